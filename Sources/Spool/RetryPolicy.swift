/// When to try again (pure: the caller supplies time and randomness).
///
/// Default schedule after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h
/// (the last repeats), each ±20 % jitter; a `Retry-After` from the endpoint is honoured when
/// longer, clamped to [1 s, 24 h]; after `maxAge` the entry is dead-lettered (never dropped).
package struct RetryPolicy: Sendable, Hashable {
    /// Delays in milliseconds before retry 1, 2, …; the last one repeats.
    package var scheduleMilliseconds: [Int64]
    /// Entries older than this are dead-lettered instead of retried.
    package var maxAgeMilliseconds: Int64
    /// ± jitter as a fraction of the delay (0.2 = ±20 %).
    package var jitter: Double

    package static let defaultSchedule: [Int64] = [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400].map {
        $0 * 1000
    }

    package init(
        scheduleMilliseconds: [Int64] = RetryPolicy.defaultSchedule,
        maxAgeMilliseconds: Int64 = 5 * 86_400_000,
        jitter: Double = 0.2
    ) {
        self.scheduleMilliseconds = scheduleMilliseconds.isEmpty ? RetryPolicy.defaultSchedule : scheduleMilliseconds
        self.maxAgeMilliseconds = maxAgeMilliseconds
        self.jitter = jitter
    }

    /// What to do after failed attempt number `attempts` (1 = the first attempt failed).
    package enum Decision: Sendable, Hashable {
        case retry(atMilliseconds: Int64)
        case deadLetter(reason: String)
    }

    /// Decides after a transient failure. `random` is in 0..<1 (jitter).
    package func afterTransientFailure(
        attempts: Int,
        createdAtMilliseconds: Int64,
        nowMilliseconds: Int64,
        retryAfterSeconds: Int?,
        random: Double
    ) -> Decision {
        let index = min(max(attempts, 1) - 1, scheduleMilliseconds.count - 1)
        let base = Double(scheduleMilliseconds[index])
        var delay = Int64(base * (1 + jitter * (2 * random - 1)))
        if let retryAfterSeconds {
            let clamped = Int64(min(max(retryAfterSeconds, 1), 86_400)) * 1000
            delay = max(delay, clamped)
        }
        let next = nowMilliseconds + max(delay, 100)
        if next - createdAtMilliseconds > maxAgeMilliseconds {
            return .deadLetter(
                reason: "gave up after \(attempts) attempt(s): older than \(maxAgeMilliseconds / 1000) s"
            )
        }
        return .retry(atMilliseconds: next)
    }

    /// Parses `5s,5m,30m,2h,1d` (units s, m, h, d; plain numbers are seconds).
    package static func parseDurations(_ text: String) -> [Int64]? {
        var result: [Int64] = []
        for part in text.split(separator: ",") {
            guard let milliseconds = parseDuration(String(part)) else { return nil }
            result.append(milliseconds)
        }
        return result.isEmpty ? nil : result
    }

    /// Parses one duration like `5s`, `250ms`, `30m`, `2h`, `5d` into milliseconds.
    package static func parseDuration(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: " ")
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            guard let value = Double(number), value >= 0 else { return nil }
            return Int64(value * Double(factor))
        }
        guard let value = Double(trimmed), value >= 0 else { return nil }
        return Int64(value * 1000)
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var slice = self[...]
        while slice.first == character { slice = slice.dropFirst() }
        while slice.last == character { slice = slice.dropLast() }
        return String(slice)
    }
}
