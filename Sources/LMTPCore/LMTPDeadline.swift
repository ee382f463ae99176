/// A request deadline in the manner of Postfix's `smtpd_per_request_deadline` and
/// `smtpd_min_data_rate`, as a pure value: the driver reports elapsed time and bytes received.
///
/// For a command the deadline is simply `timeout` from when the server started waiting for it:
/// partial bytes do not extend it, so a client that drips a command a byte at a time is cut off.
/// In DATA every `n` bytes received add `n / minimumRate` seconds (never beyond `timeout`), so a
/// client that sends slower than `minimumRate` bytes per second runs out of time even though it is
/// never silent for long. With `minimumRate` 0 any bytes restart the full timeout (plain inactivity).
public struct LMTPDeadline: Sendable, Hashable {
    public let timeout: Duration
    /// Bytes per second a transfer must sustain; `0` turns the rate check off.
    public let minimumRate: Int
    /// Time left before the deadline.
    public private(set) var remaining: Duration

    public init(timeout: Duration, minimumRate: Int = 0) {
        self.timeout = timeout
        self.minimumRate = minimumRate
        self.remaining = timeout
    }

    /// `elapsed` has passed and `bytes` were received since the last call.
    public mutating func record(elapsed: Duration, bytes: Int) {
        remaining -= elapsed
        guard bytes > 0 else { return }
        if minimumRate > 0 {
            let credit = Duration.nanoseconds(Int64(min(Double(bytes) / Double(minimumRate) * 1e9, 1e15)))
            remaining = min(timeout, remaining + credit)
        } else if remaining > .zero {
            remaining = timeout
        }
    }

    /// Starts over with the full timeout (a new command, a new message).
    public mutating func reset() { remaining = timeout }

    /// `true` once the time is used up.
    public var isExpired: Bool { remaining <= .zero }
}
