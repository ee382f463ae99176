import Clocks
import Delivery
import Foundation
import LMTPCore
import LMTPHook
import LMTPHookTestSupport
import LMTPServer
import MailCore
import NIOConcurrencyHelpers
import Spool
import Targets
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The delivery engine's edges, each a symptom of the engine it replaced: over real sockets, a
/// real spool and real receivers; where time decides, a test clock the test drives.
@Suite("Delivery engine: claims, spool errors, fairness")
struct DeliveryEngineTests {
    static func send(
        _ relay: RunningRelay,
        to recipients: [String] = ["b@example.test"],
        subject: String = "engine"
    )
        async throws -> [LMTPClientConnection.Reply]
    {
        let socket = relay.socketPath
        return try await blocking {
            try LMTPClientConnection(unixPath: socket).deliver(
                from: "a@example.org",
                to: recipients,
                message: sampleMessage(subject: subject)
            )
        }
    }

    static func waitUntil(_ timeout: Duration = .seconds(15), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
    }

    /// Symptom 2: a sync attempt still running after the budget held no claim, so `spool replay`
    /// posted the same entry at the same time (two overlapping requests, one webhook id).
    @Test(
        "a sync attempt that outlives the budget keeps its entry claimed: spool replay reports it busy and sends nothing; the late success completes the entry"
    )
    func lateAttemptHoldsTheClaim() async throws {
        let binary = try Binary.require()
        let sink = try await RecordingSink.start(responderThreads: 4)
        sink.answer(nil, afterMilliseconds: 3_000)
        let spoolPath = TemporaryDirectory().file("spool")
        let relay = try await RunningRelay.start(
            webhookURL: sink.url,
            spool: spoolPath,
            delivery: DeliverySettings(
                syncBudget: .milliseconds(300),
                retry: RetryPolicy(scheduleMilliseconds: [600_000], jitter: 0)
            )
        )
        let replies = try await Self.send(relay)
        #expect(replies.first?.lines.last?.contains("queued as") == true, "\(replies)")
        let spool = try Spool(path: spoolPath)
        #expect(spool.ids().count == 1)
        // The attempt is still waiting for its answer; an operator replays everything.
        let replay = await runProcess(binary, ["spool", "replay", "--all", "--spool", spoolPath])
        #expect(replay.output.contains("busy (being delivered by serve) 1"), "\(replay.output)")
        #expect(sink.requests.count == 1, "replay sent nothing while the late attempt runs")
        try await Self.waitUntil { spool.ids().isEmpty }
        #expect(spool.ids().isEmpty, "the late success completed the entry")
        #expect(sink.requests.count == 1 && sink.accepted.count == 1)
        try await relay.stop()
        await sink.stop()
    }

    /// Symptom 3: a spool error while recording an attempt made `serve` forget the entry until a
    /// restart, silently; `claim()` reported EMFILE as "not found".
    struct SpoolErrorCase: Sendable, CustomTestStringConvertible {
        let operation: String
        let fault: SpoolFaultInjection.Operation
        let code: Int32
        /// The receiver's answer to the retry that meets the fault.
        let answer: Int?
        /// Requests the receiver sees while the fault holds (the sync attempt's 503 included).
        let requestsWhileFaulty: ClosedRange<Int>
        /// Where the entry ends up once the fault clears.
        let endsIn: String
        var testDescription: String { "\(operation) fails with \(String(cString: strerror(code)))" }
    }

    @Test(
        "a spool error on an entry is logged with its operation, counted and tried again with backoff; the entry is never forgotten, never sent again once delivered or refused",
        arguments: [
            SpoolErrorCase(
                operation: "state",
                fault: .rename,
                code: ENOSPC,
                answer: 503,
                requestsWhileFaulty: 2...3,
                endsIn: "delivered"
            ),
            SpoolErrorCase(
                operation: "complete",
                fault: .directorySync,
                code: EIO,
                answer: nil,
                requestsWhileFaulty: 2...2,
                endsIn: "delivered"
            ),
            SpoolErrorCase(
                operation: "dead-letter",
                fault: .rename,
                code: EIO,
                answer: 400,
                requestsWhileFaulty: 2...2,
                endsIn: "dead"
            ),
            SpoolErrorCase(
                operation: "read",
                fault: .open,
                code: EMFILE,
                answer: nil,
                requestsWhileFaulty: 1...1,
                endsIn: "delivered"
            ),
        ]
    )
    func spoolErrorsKeepTheEntry(_ situation: SpoolErrorCase) async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let directory = TemporaryDirectory()
        let spoolPath = directory.file("spool")
        let faults = SpoolFaultInjection()
        let log = CapturedLog()
        var configuration = RelayConfiguration(
            server: LMTPServerConfiguration(listeners: []),
            webhook: WebhookEndpoint(url: sink.url, connectTimeoutMilliseconds: 1_000, totalTimeoutMilliseconds: 5_000),
            spoolDirectory: spoolPath,
            delivery: DeliverySettings(
                retry: RetryPolicy(scheduleMilliseconds: [300], jitter: 0),
                breakerThreshold: 1_000
            ),
            deliveryThreads: 4
        )
        configuration.spoolFaults = faults
        let relay = try await RunningRelay.start(configuration, directory: directory, log: log)
        #expect(try await Self.send(relay).first?.lines.last?.contains("queued as") == true)
        let spool = try Spool(path: spoolPath)
        let id = try #require(spool.ids().first)
        faults.fail(situation.fault, errno: situation.code)
        sink.answer(situation.answer)
        let errorLine = { () -> Int in
            log.lines(
                .error,
                containing: "spool error: entry kept",
                "operation=\(situation.operation)",
                "spool_id=\(id)"
            )
            .count
        }
        try await Self.waitUntil { errorLine() >= 2 }
        #expect(errorLine() >= 2, "the error was met, and met again after its backoff: \(log.lines)")
        #expect(relay.relay.delivery.scheduledAttempt(id) != nil, "still scheduled")
        #expect(
            situation.requestsWhileFaulty.contains(sink.requests.count),
            "requests while the fault holds: \(sink.requests.count)"
        )
        faults.clear()
        sink.answer(nil)  // the receiver is fine too by now (a refused entry is not asked again)
        try await Self.waitUntil { relay.relay.delivery.scheduledAttempt(id) == nil }
        #expect(relay.relay.delivery.scheduledAttempt(id) == nil, "finished once the disk recovered")
        #expect(spool.ids().isEmpty)
        switch situation.endsIn {
        case "dead":
            #expect(spool.ids(dead: true) == [id])
            #expect(sink.requests.count == 2, "a refused entry is not sent again")
        default:
            #expect(sink.accepted.count == 1, "delivered exactly once")
        }
        try await relay.stop()
        await sink.stop()
        directory.remove()
    }

    /// Symptom 5: queued messages for an endpoint that hangs delayed another, healthy endpoint's
    /// due retry (2 s became 17 s): late attempts counted toward the retry cap, one endpoint could
    /// take every retry slot, and retries waited for the hanging ones.
    @Test(
        "queued and late messages for an endpoint that hangs do not delay another endpoint's due retry: it goes as soon as the (test) clock reaches its due time"
    )
    func hangingEndpointDoesNotDelayOthers() async throws {
        let hanging = try await RecordingSink.start(responderThreads: 16)
        hanging.answer(503)
        let healthy = try await RecordingSink.start()
        healthy.answer(503)
        let clock = TestClock()
        let directory = TemporaryDirectory()
        var slow = WebhookEndpoint(
            name: "hangs",
            url: hanging.url,
            connectTimeoutMilliseconds: 1_000,
            totalTimeoutMilliseconds: 3_000
        )
        // More slots than the retry cap: without fair shares its due entries could take every
        // retry slot and hang there.
        slow.maxInFlight = 12
        let configuration = RelayConfiguration(
            server: LMTPServerConfiguration(listeners: []),
            endpoints: [
                slow,
                WebhookEndpoint(
                    name: "healthy",
                    url: healthy.url,
                    connectTimeoutMilliseconds: 1_000,
                    totalTimeoutMilliseconds: 5_000
                ),
            ],
            routes: RouteTable(routes: [
                Route(name: "slow", conditions: [RouteCondition(localPart: "slow")], endpoints: ["hangs"]),
                Route(name: "fast", conditions: [RouteCondition(localPart: "fast")], endpoints: ["healthy"]),
            ]),
            spoolDirectory: directory.file("spool"),
            delivery: DeliverySettings(
                syncBudget: .milliseconds(200),
                retry: RetryPolicy(scheduleMilliseconds: [2_000], jitter: 0),
                breakerThreshold: 1_000,
                retryConcurrency: 4
            ),
            deliveryThreads: 16
        )
        let relay = try await RunningRelay.start(
            configuration,
            directory: directory,
            clock: DeliveryClock(clock, startingAt: UnixTime.now().milliseconds)
        )
        // Ten messages the hanging endpoint refused for now (503): queued, due in 2 s.
        for index in 0..<10 {
            let replies = try await Self.send(relay, to: ["slow@example.test"], subject: "queued \(index)")
            #expect(replies.first?.lines.last?.contains("queued as") == true, "\(replies)")
        }
        // From now on it hangs. Six more messages: each attempt outlives its budget (on the test
        // clock) and goes on as a late attempt, holding one of the endpoint's slots.
        hanging.answer(nil, afterMilliseconds: 4_000)
        let sends = (0..<6).map { index in
            Pending { try await Self.send(relay, to: ["slow@example.test"], subject: "late \(index)") }
        }
        while sends.contains(where: { $0.result == nil }) {
            await clock.advance(by: .milliseconds(200))
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try sends.allSatisfy { try $0.result!.get().first?.lines.last?.contains("queued as") == true })
        // One message for the healthy endpoint: 503, queued, due 2 s later on the test clock.
        let fast = try await Self.send(relay, to: ["fast@example.test"], subject: "fast")
        #expect(fast.first?.lines.last?.contains("queued as") == true, "\(fast)")
        healthy.answer(nil)
        // Everything becomes due. Late attempts are not retries (they take none of the 4 retry
        // slots); of those, the hanging endpoint's share is 4 / 2 endpoints = 2.
        await clock.advance(by: .seconds(2))
        let dueAt = ContinuousClock.now
        _ = await healthy.waitFor(2, timeout: .seconds(5))
        #expect(healthy.accepted.count == 1, "the healthy endpoint's retry was sent")
        #expect(ContinuousClock.now - dueAt < .seconds(1), "within 1 s of its due time: \(ContinuousClock.now - dueAt)")
        try await Task.sleep(for: .milliseconds(300))
        #expect(
            hanging.requests.count == 10 + 6 + 2,
            "10 sync attempts, 6 late ones, and only its share (2) of retries: \(hanging.requests.count)"
        )
        try await relay.stop()
        await hanging.stop()
        await healthy.stop()
    }

    /// Symptom 4: fan-out plus an MTA retry. `support@` → [tickets, chat], `sales@` → [tickets];
    /// chat answers 503 without a spool, so support gets 451 and sales 250; Postfix retries
    /// support alone with the same bytes, and tickets got the message again under a new webhook
    /// id — a duplicate it could not drop.
    @Test(
        "fan-out, then an MTA retry of one recipient: the endpoint that already took it is not sent the message again (the journal), the one that failed is; also across a restart",
        arguments: [false, true]
    )
    func journalSkipsWhatWasTaken(restart: Bool) async throws {
        let tickets = try await RecordingSink.start()
        let chat = try await RecordingSink.start()
        chat.answer(503)
        let directory = TemporaryDirectory()
        let yaml = """
            \(restart ? "delivery: {journal: \"\(directory.file("journal.sqlite"))\"}" : "")
            endpoints:
              - {name: tickets, url: "\(tickets.url)"}
              - {name: chat, url: "\(chat.url)"}
            routes:
              - {name: support, match: {address: support@example.test}, endpoints: [tickets, chat]}
              - {name: sales, match: {address: sales@example.test}, endpoint: tickets}
            """
        let configuration = try ConfigFile.parse(yaml, file: "test.yaml") { _ in nil }.relay
        var relay = try await RunningRelay.start(configuration)
        let message = sampleMessage(subject: "fan-out")
        let send = { (relay: RunningRelay, recipients: [String]) async throws -> [LMTPClientConnection.Reply] in
            let socket = relay.socketPath
            return try await blocking {
                try LMTPClientConnection(unixPath: socket).deliverEach(
                    from: "a@example.org",
                    to: recipients,
                    message: message
                )
            }
        }
        let first = try await send(relay, ["support@example.test", "sales@example.test"])
        #expect(first.map(\.code) == [451, 250], "\(first)")
        #expect(tickets.requests.count == 1, "one request for both recipients")
        if restart {
            try await relay.stop()
            relay = try await RunningRelay.start(configuration)
        }
        chat.answer(nil)
        // The MTA retries the deferred recipient alone, with the same bytes.
        let retry = try await send(relay, ["support@example.test"])
        #expect(retry.map(\.code) == [250], "\(retry)")
        #expect(retry.first?.lines.last?.contains("already delivered id=") == true, "\(retry)")
        #expect(tickets.requests.count == 1, "tickets is not sent the message again")
        #expect(chat.accepted.count == 1, "chat, which failed, gets it")
        try await relay.stop()
        await tickets.stop()
        await chat.stop()
        directory.remove()
    }
}

/// An operation running in a task whose result can be looked at without waiting for it.
private final class Pending<T: Sendable>: Sendable {
    private let box = NIOLockedValueBox<Result<T, any Error>?>(nil)

    init(_ operation: @escaping @Sendable () async throws -> T) {
        let box = self.box
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            box.withLockedValue { $0 = result }
        }
    }

    var result: Result<T, any Error>? { box.withLockedValue { $0 } }
}
