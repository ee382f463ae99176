import Metrics
import NIOConcurrencyHelpers

/// What the relay reports through swift-metrics (Prometheus names; a no-op until the process
/// bootstraps a backend): recipients by outcome, webhook requests by endpoint and outcome, their
/// latency, the spool's depth, bytes, oldest entry and dead letters, and each endpoint's circuit.
package final class DeliveryMetrics: Sendable {
    private struct Key: Hashable {
        let name: String
        let labels: [String]
    }

    private let counters = NIOLockedValueBox<[Key: Counter]>([:])
    private let timers = NIOLockedValueBox<[String: Timer]>([:])
    private let gauges = NIOLockedValueBox<[Key: Gauge]>([:])

    package let spoolEntries = Gauge(label: "lmtphook_spool_entries")
    package let spoolBytes = Gauge(label: "lmtphook_spool_bytes")
    package let spoolOldestAge = Gauge(label: "lmtphook_spool_oldest_age_seconds")
    package let deadLetters = Gauge(label: "lmtphook_spool_dead_letters")
    package let deadLetterBytes = Gauge(label: "lmtphook_spool_dead_letter_bytes")
    package let spoolWritable = Gauge(label: "lmtphook_spool_writable")

    /// Creates every labelled series at zero for these endpoints, so rates and alerts work from
    /// the start (a series appears in Prometheus only once it exists).
    package func prime(endpoints: [String]) {
        for status in ["delivered", "queued", "bounced", "deferred", "rejected"] {
            _ = counter("lmtphook_recipients_total", [("status", status)])
        }
        for operation in ["read", "state", "complete", "dead-letter", "quarantine"] {
            _ = counter("lmtphook_spool_errors_total", [("operation", operation)])
        }
        for endpoint in endpoints {
            for outcome in ["delivered", "transient", "permanent"] {
                for kind in ["sync", "retry"] {
                    _ = counter(
                        "lmtphook_webhook_requests_total",
                        [("endpoint", endpoint), ("outcome", outcome), ("kind", kind)]
                    )
                }
            }
            for reason in ["refused", "expired"] {
                _ = counter("lmtphook_dead_letters_total", [("endpoint", endpoint), ("reason", reason)])
            }
        }
    }

    /// One recipient's final reply: `delivered`, `queued`, `bounced`, `deferred`, or `rejected` (at RCPT).
    package func recipient(_ status: String) {
        counter("lmtphook_recipients_total", [("status", status)]).increment()
    }

    /// One webhook request: its outcome (`delivered`, `transient`, `permanent`) and `kind` (`sync`, `retry`).
    package func request(endpoint: String, outcome: DeliveryOutcome, kind: String, seconds: Double) {
        let label = outcome.label
        counter("lmtphook_webhook_requests_total", [("endpoint", endpoint), ("outcome", label), ("kind", kind)])
            .increment()
        let timer = timers.withLockedValue { timers in
            if let timer = timers[endpoint] { return timer }
            let timer = Timer(
                label: "lmtphook_webhook_request_duration_seconds",
                dimensions: [("endpoint", endpoint)],
                preferredDisplayUnit: .seconds
            )
            timers[endpoint] = timer
            return timer
        }
        timer.recordNanoseconds(Int64(max(0, seconds) * 1_000_000_000))
    }

    /// A queued entry that became a dead letter (`reason`: `refused` or `expired`).
    package func deadLettered(endpoint: String, reason: String) {
        counter("lmtphook_dead_letters_total", [("endpoint", endpoint), ("reason", reason)]).increment()
    }

    /// A spool operation that failed on an entry (`read`, `state`, `complete`, `dead-letter`,
    /// `quarantine`); the entry is kept and tried again.
    package func spoolError(operation: String) {
        counter("lmtphook_spool_errors_total", [("operation", operation)]).increment()
    }

    /// A journal operation that failed (`read`, `write`, `prune`); delivery goes on without it.
    package func journalError(operation: String) {
        counter("lmtphook_journal_errors_total", [("operation", operation)]).increment()
    }

    /// 1 while the endpoint's circuit is open (new mail skips the sync attempt), else 0.
    package func circuit(endpoint: String, open: Bool) {
        let key = Key(name: "lmtphook_endpoint_circuit_open", labels: [endpoint])
        let gauge = gauges.withLockedValue { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = Gauge(label: key.name, dimensions: [("endpoint", endpoint)])
            gauges[key] = gauge
            return gauge
        }
        gauge.record(open ? 1 : 0)
    }

    private func counter(_ name: String, _ dimensions: [(String, String)]) -> Counter {
        let key = Key(name: name, labels: dimensions.flatMap { [$0.0, $0.1] })
        return counters.withLockedValue { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: name, dimensions: dimensions)
            counters[key] = counter
            return counter
        }
    }
}
