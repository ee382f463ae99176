import Targets

/// What one endpoint may do right now: its circuit breaker, its token bucket, its request slots
/// and its slow-answer warnings, as a value type over times given by the caller (milliseconds
/// since 1970). No clock, no locks, no I/O: the engine keeps one per endpoint under its lock, and
/// tests drive it with plain numbers.
package struct EndpointPolicy: Sendable {
    /// The limits this policy enforces (from the endpoint's configuration and the relay's defaults).
    package struct Limits: Sendable, Equatable {
        /// Consecutive transient failures that open the circuit.
        package var breakerThreshold: Int
        /// How long an open circuit stays open before one request may probe it.
        package var breakerCooldownMilliseconds: Int64
        /// Requests in flight at most (sync, late and retry attempts together).
        package var maxInFlight: Int
        /// Requests per period at most, if limited.
        package var rateLimit: RateLimit?

        package init(
            breakerThreshold: Int,
            breakerCooldownMilliseconds: Int64,
            maxInFlight: Int,
            rateLimit: RateLimit? = nil
        ) {
            self.breakerThreshold = breakerThreshold
            self.breakerCooldownMilliseconds = breakerCooldownMilliseconds
            self.maxInFlight = maxInFlight
            self.rateLimit = rateLimit
        }
    }

    /// The circuit breaker; the state carries its data.
    package enum Breaker: Sendable, Equatable {
        /// Requests go; `failures` transient failures in a row so far.
        case closed(failures: Int)
        /// No request goes until `until`; then one may probe.
        case open(until: Int64)
        /// One request is probing; its answer closes or reopens the circuit. Nobody else goes.
        case probing
    }

    /// How a request stands with the breaker.
    package enum BreakerAdmission: Sendable, Equatable {
        /// The circuit is closed: go.
        case closed
        /// This request is the one probe of a half-open circuit: go, and report its outcome (or
        /// ``EndpointPolicy/abandonProbe(now:)`` when it is not sent after all).
        case probe
        /// Open (or another request is probing): do not send; `until` is when it may be tried.
        case open(until: Int64?)
    }

    /// What an outcome did to the breaker (worth a log line).
    package enum BreakerChange: Sendable, Equatable {
        case opened
        case closed
    }

    package var limits: Limits
    package private(set) var breaker: Breaker = .closed(failures: 0)
    /// Requests in flight, all kinds.
    package private(set) var inFlight = 0
    /// Retries in flight (part of ``inFlight``).
    package private(set) var retriesInFlight = 0
    private var bucket: TokenBucket?
    private var lastSlowWarning: Int64?

    package init(limits: Limits) { self.limits = limits }

    /// This (fresh) policy with the requests in flight of `other` (a reload that changed the
    /// endpoint's URL or rate: health starts over, requests in flight still hold their slots).
    package func carryingSlots(of other: EndpointPolicy) -> EndpointPolicy {
        var copy = self
        copy.inFlight = other.inFlight
        copy.retriesInFlight = other.retriesInFlight
        return copy
    }

    // MARK: Breaker

    /// Asks the breaker whether a request may go now; moves an open circuit whose cooldown is over
    /// to probing (this request is the probe).
    package mutating func admitThroughBreaker(now: Int64) -> BreakerAdmission {
        switch breaker {
        case .closed: return .closed
        case .probing: return .open(until: nil)
        case .open(let until):
            guard now >= until else { return .open(until: until) }
            breaker = .probing
            return .probe
        }
    }

    /// What ``admitThroughBreaker(now:)`` would answer, without changing anything.
    package func breakerAdmissionPreview(now: Int64) -> BreakerAdmission {
        var copy = self
        return copy.admitThroughBreaker(now: now)
    }

    /// The probe was admitted but never sent (it found no slot or token): the next request may probe.
    package mutating func abandonProbe(now: Int64) {
        if breaker == .probing { breaker = .open(until: now) }
    }

    /// Records an answer. A transient failure counts toward opening the circuit (and reopens it
    /// after a failed probe); anything else — delivered or a permanent refusal, i.e. the endpoint
    /// answered — closes it.
    package mutating func record(transientFailure: Bool, now: Int64) -> BreakerChange? {
        let wasClosed: Bool
        if case .closed = breaker { wasClosed = true } else { wasClosed = false }
        if !transientFailure {
            breaker = .closed(failures: 0)
            return wasClosed ? nil : .closed
        }
        switch breaker {
        case .closed(let failures):
            if failures + 1 >= limits.breakerThreshold {
                breaker = .open(until: now + limits.breakerCooldownMilliseconds)
                return .opened
            }
            breaker = .closed(failures: failures + 1)
            return nil
        case .probing, .open:
            // A failed probe, or a request that was in flight when the circuit opened.
            breaker = .open(until: now + limits.breakerCooldownMilliseconds)
            return nil
        }
    }

    /// `true` while the circuit is open or probing (new mail skips the sync attempt).
    package func circuitOpen(now: Int64) -> Bool {
        switch breaker {
        case .closed: return false
        case .probing: return true
        case .open(let until): return now < until
        }
    }

    // MARK: Rate limit

    /// Reserves a token if one comes within `maxWait` milliseconds (`nil`: any wait); returns how
    /// long to wait before sending (0: now), or `nil` (nothing reserved) when that is too long.
    package mutating func reserveToken(now: Int64, maxWait: Int64?) -> Int64? {
        guard let limit = limits.rateLimit else { return 0 }
        if bucket?.limit != limit { bucket = TokenBucket(limit: limit, nowMilliseconds: now) }
        let wait = bucket!.reserve(nowMilliseconds: now)
        if let maxWait, wait > maxWait {
            bucket!.release()
            return nil
        }
        return wait
    }

    /// Takes a token only if one is there now (returns 0); else returns how long until one is,
    /// with nothing reserved.
    package mutating func takeTokenNow(now: Int64) -> Int64 {
        guard let limit = limits.rateLimit else { return 0 }
        if bucket?.limit != limit { bucket = TokenBucket(limit: limit, nowMilliseconds: now) }
        let wait = bucket!.reserve(nowMilliseconds: now)
        if wait > 0 { bucket!.release() }
        return wait
    }

    /// Gives back a token reserved for a request that was not sent.
    package mutating func returnToken() { bucket?.release() }

    // MARK: Slots

    /// `true` when a request may take a slot now.
    package var hasFreeSlot: Bool { inFlight < limits.maxInFlight }

    /// Takes a slot if one is free.
    package mutating func takeSlot(retry: Bool) -> Bool {
        guard hasFreeSlot else { return false }
        inFlight += 1
        if retry { retriesInFlight += 1 }
        return true
    }

    /// Frees a slot taken by ``takeSlot(retry:)``.
    package mutating func releaseSlot(retry: Bool) {
        inFlight = max(0, inFlight - 1)
        if retry { retriesInFlight = max(0, retriesInFlight - 1) }
    }

    /// Hands a slot that is being freed straight to a waiting request (the count stays).
    package mutating func passSlot(fromRetry: Bool) {
        if fromRetry { retriesInFlight = max(0, retriesInFlight - 1) }
    }

    // MARK: Retries

    /// When a retry could go: `nil` when only a freed slot can change that (no time will), else
    /// the earliest time (≤ now: now). Nothing is reserved.
    package func retryReadyAt(now: Int64) -> Int64? {
        switch breaker {
        case .probing: return nil
        case .open(let until) where until > now: return until
        default: break
        }
        guard hasFreeSlot else { return nil }
        return now
    }

    // MARK: Slow answers

    /// Whether an answer this slow deserves a warning (at most one a minute per endpoint).
    package mutating func shouldWarnSlow(seconds: Double, now: Int64) -> Bool {
        guard seconds >= Self.slowSeconds else { return false }
        if let last = lastSlowWarning, now - last < 60_000 { return false }
        lastSlowWarning = now
        return true
    }

    /// An answer slower than this is logged as a warning.
    package static let slowSeconds = 2.0
}
