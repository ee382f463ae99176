import Delivery
import Targets
import Testing

@Suite("Endpoint policy: breaker, bucket, slots (pure, times given)")
struct EndpointPolicyTests {
    static func policy(
        threshold: Int = 3,
        cooldown: Int64 = 1_000,
        slots: Int = 2,
        rate: RateLimit? = nil
    )
        -> EndpointPolicy
    {
        EndpointPolicy(
            limits: .init(
                breakerThreshold: threshold,
                breakerCooldownMilliseconds: cooldown,
                maxInFlight: slots,
                rateLimit: rate
            )
        )
    }

    /// A step of the breaker: an outcome at a time, or a question at a time, and what follows.
    enum Step: Sendable, CustomStringConvertible {
        case fail(at: Int64)
        case succeed(at: Int64)
        case ask(at: Int64, expect: EndpointPolicy.BreakerAdmission)
        case abandon(at: Int64)

        var description: String {
            switch self {
            case .fail(let at): "fail@\(at)"
            case .succeed(let at): "ok@\(at)"
            case .ask(let at, let expect): "ask@\(at)→\(expect)"
            case .abandon(let at): "abandon@\(at)"
            }
        }
    }

    @Test(
        "breaker transitions",
        arguments: [
            // Below the threshold: closed.
            [Step.fail(at: 0), .fail(at: 1), .ask(at: 2, expect: .closed)],
            // A success resets the streak.
            [.fail(at: 0), .fail(at: 1), .succeed(at: 2), .fail(at: 3), .fail(at: 4), .ask(at: 5, expect: .closed)],
            // Threshold reached: open until cooldown ends.
            [.fail(at: 0), .fail(at: 1), .fail(at: 2), .ask(at: 500, expect: .open(until: 1_002))],
            // After the cooldown one probe; others wait while it runs.
            [
                .fail(at: 0), .fail(at: 1), .fail(at: 2), .ask(at: 1_002, expect: .probe),
                .ask(at: 1_003, expect: .open(until: nil)),
            ],
            // A failed probe reopens for a full cooldown.
            [
                .fail(at: 0), .fail(at: 1), .fail(at: 2), .ask(at: 1_002, expect: .probe), .fail(at: 1_100),
                .ask(at: 2_000, expect: .open(until: 2_100)), .ask(at: 2_100, expect: .probe),
            ],
            // A good probe closes it.
            [
                .fail(at: 0), .fail(at: 1), .fail(at: 2), .ask(at: 1_002, expect: .probe), .succeed(at: 1_050),
                .ask(at: 1_051, expect: .closed),
            ],
            // An abandoned probe (never sent) lets the next request probe at once.
            [
                .fail(at: 0), .fail(at: 1), .fail(at: 2), .ask(at: 1_002, expect: .probe), .abandon(at: 1_010),
                .ask(at: 1_011, expect: .probe),
            ],
        ]
    )
    func breaker(_ steps: [Step]) {
        var policy = Self.policy()
        for step in steps {
            switch step {
            case .fail(let at): _ = policy.record(transientFailure: true, now: at)
            case .succeed(let at): _ = policy.record(transientFailure: false, now: at)
            case .abandon(let at): policy.abandonProbe(now: at)
            case .ask(let at, let expect):
                let admission = policy.admitThroughBreaker(now: at)
                #expect(admission == expect, "\(steps)")
            }
        }
    }

    @Test("opening and closing are reported once each")
    func breakerChanges() {
        var policy = Self.policy(threshold: 2)
        let changes = [
            policy.record(transientFailure: true, now: 0), policy.record(transientFailure: true, now: 1),
        ]
        #expect(changes == [nil, .opened])
        #expect(policy.circuitOpen(now: 2))
        #expect(!policy.circuitOpen(now: 1_001))
        let closing = [
            policy.record(transientFailure: false, now: 1_002), policy.record(transientFailure: false, now: 1_003),
        ]
        #expect(closing == [.closed, nil])
    }

    @Test("token bucket: reserve within a wait, take-now never reserves what it cannot use")
    func tokens() {
        var policy = Self.policy(rate: RateLimit(requests: 2, periodMilliseconds: 1_000))
        let reserved = [
            policy.reserveToken(now: 0, maxWait: 0), policy.reserveToken(now: 0, maxWait: 0),
            policy.reserveToken(now: 0, maxWait: 100),  // the next token is 500 ms away: too long
            policy.reserveToken(now: 0, maxWait: 600),
        ]
        #expect(reserved == [0, 0, nil, 500])
        // The bucket is now owed one token; take-now says when, and takes nothing by asking.
        let taken = [policy.takeTokenNow(now: 100), policy.takeTokenNow(now: 100), policy.takeTokenNow(now: 1_000)]
        #expect(taken == [900, 900, 0])
        var unlimited = Self.policy()
        let free = [unlimited.takeTokenNow(now: 0), unlimited.reserveToken(now: 0, maxWait: 0)]
        #expect(free == [0, 0])
    }

    @Test("slots: retries count toward the endpoint's cap; a passed slot keeps the count")
    func slots() {
        var policy = Self.policy(slots: 2)
        let taken = [policy.takeSlot(retry: true), policy.takeSlot(retry: false), policy.takeSlot(retry: false)]
        #expect(taken == [true, true, false] && !policy.hasFreeSlot)
        #expect(policy.retriesInFlight == 1 && policy.inFlight == 2)
        policy.passSlot(fromRetry: true)  // the retry's slot goes to a waiting sync attempt
        #expect(policy.retriesInFlight == 0 && policy.inFlight == 2)
        policy.releaseSlot(retry: false)
        #expect(policy.inFlight == 1 && policy.hasFreeSlot)
    }

    @Test("retry readiness: open → its end; probing or no slot → only an event helps")
    func retryReadiness() {
        var policy = Self.policy(threshold: 1, cooldown: 1_000, slots: 1)
        #expect(policy.retryReadyAt(now: 5) == 5)
        _ = policy.record(transientFailure: true, now: 10)
        #expect(policy.retryReadyAt(now: 20) == 1_010)
        let admission = policy.admitThroughBreaker(now: 1_010)
        #expect(admission == .probe)
        #expect(policy.retryReadyAt(now: 1_011) == nil)
        _ = policy.record(transientFailure: false, now: 1_020)
        _ = policy.takeSlot(retry: false)
        #expect(policy.retryReadyAt(now: 1_030) == nil)
    }

    @Test("slow answers warn at most once a minute")
    func slowWarnings() {
        var policy = Self.policy()
        let warnings = [
            policy.shouldWarnSlow(seconds: 1.9, now: 0), policy.shouldWarnSlow(seconds: 2.5, now: 0),
            policy.shouldWarnSlow(seconds: 9, now: 59_999), policy.shouldWarnSlow(seconds: 9, now: 60_000),
        ]
        #expect(warnings == [false, true, false, true])
    }
}
