/// A request rate limit as a token bucket: `requests` per `periodMilliseconds`, with bursts up to
/// `requests` (Slack: 1/s; Discord: 5/2s; ntfy: 60 burst). Pure: the caller passes the time.
package struct RateLimit: Sendable, Hashable {
    package var requests: Int
    package var periodMilliseconds: Int64

    package init(requests: Int, periodMilliseconds: Int64) {
        self.requests = requests
        self.periodMilliseconds = periodMilliseconds
    }

    /// Parses `5/2s`, `1/s`, `30/m`, `100/1h`; `nil` when malformed or not positive.
    package static func parse(_ text: String) -> RateLimit? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let requests = Int(String(parts[0]).trimmed), requests > 0 else { return nil }
        var period = String(parts[1]).trimmed
        guard let unit = period.last else { return nil }
        let multipliers: [Character: Int64] = ["s": 1_000, "m": 60_000, "h": 3_600_000]
        guard let multiplier = multipliers[unit] else { return nil }
        period.removeLast()
        let count: Int64? = period.isEmpty ? 1 : Int64(period)
        guard let count, count > 0 else { return nil }
        return RateLimit(requests: requests, periodMilliseconds: count * multiplier)
    }

    package var description: String { "\(requests)/\(Double(periodMilliseconds) / 1000)s" }
}

/// The state of one endpoint's token bucket.
package struct TokenBucket: Sendable {
    package let limit: RateLimit
    private var tokens: Double
    private var updatedMilliseconds: Int64

    package init(limit: RateLimit, nowMilliseconds: Int64) {
        self.limit = limit
        tokens = Double(limit.requests)
        updatedMilliseconds = nowMilliseconds
    }

    /// Takes one token: returns 0 when a request may go now, else the milliseconds to wait; the
    /// token is reserved either way (callers wait, then send), so waiters queue fairly.
    package mutating func reserve(nowMilliseconds now: Int64) -> Int64 {
        let rate = Double(limit.requests) / Double(limit.periodMilliseconds)  // tokens per ms
        if now > updatedMilliseconds {
            tokens = min(Double(limit.requests), tokens + Double(now - updatedMilliseconds) * rate)
            updatedMilliseconds = now
        }
        tokens -= 1
        if tokens >= 0 { return 0 }
        return Int64((-tokens / rate).rounded(.up))
    }

    /// Gives back a reservation that was not used (the caller gave up waiting).
    package mutating func release() {
        tokens = min(Double(limit.requests), tokens + 1)
    }
}
