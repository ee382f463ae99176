import MailCore

/// The delivery engine's time: wall-clock milliseconds for what is recorded (spool entries,
/// attempt history, payload times) and sleeping until such a time for what is scheduled (sync
/// budgets, retries, breaker cooldowns, rate limits, slot waits). Production uses the system's
/// clocks; tests drive a `TestClock` (swift-clocks) instead of sleeping.
package struct DeliveryClock: Sendable {
    private let now: @Sendable () -> Int64
    private let sleepUntil: @Sendable (Int64) async throws -> Void

    /// The system clock: `gettimeofday` for now, `Task.sleep` for waiting.
    package static let system = DeliveryClock(
        now: { UnixTime.now().milliseconds },
        sleepUntil: { deadline in
            let wait = deadline - UnixTime.now().milliseconds
            if wait > 0 { try await Task.sleep(for: .milliseconds(wait)) } else { try Task.checkCancellation() }
        }
    )

    private init(now: @escaping @Sendable () -> Int64, sleepUntil: @escaping @Sendable (Int64) async throws -> Void) {
        self.now = now
        self.sleepUntil = sleepUntil
    }

    /// Time driven by `clock` (a test clock), starting at `milliseconds` since 1970. Sleeps are
    /// until absolute instants of `clock`, so advancing it wakes exactly the sleeps that are due.
    package init<C: Clock>(_ clock: C, startingAt milliseconds: Int64) where C.Duration == Duration, C: Sendable {
        let origin = clock.now
        self.init(
            now: { milliseconds + DeliveryClock.milliseconds(origin.duration(to: clock.now)) },
            sleepUntil: { deadline in
                try await clock.sleep(
                    until: origin.advanced(by: .milliseconds(deadline - milliseconds)),
                    tolerance: nil
                )
            }
        )
    }

    /// Milliseconds since 1970.
    package var nowMilliseconds: Int64 { now() }

    /// Sleeps until `milliseconds` since 1970 (returns at once when that has passed); throws
    /// when the task is cancelled.
    package func sleep(untilMilliseconds milliseconds: Int64) async throws { try await sleepUntil(milliseconds) }

    /// Whole milliseconds of a duration (rounded down).
    package static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}
