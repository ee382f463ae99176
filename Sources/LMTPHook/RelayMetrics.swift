import Metrics
import NIOConcurrencyHelpers

/// What the relay reports through swift-metrics (Prometheus names; a no-op until the process
/// bootstraps a backend): recipients by outcome, webhook requests by endpoint and outcome, their
/// latency, the spool's depth, bytes, oldest entry and dead letters, and each endpoint's circuit.
final class RelayMetrics: Sendable {
    private struct Key: Hashable {
        let name: String
        let labels: [String]
    }

    private let counters = NIOLockedValueBox<[Key: Counter]>([:])
    private let timers = NIOLockedValueBox<[String: Timer]>([:])
    private let gauges = NIOLockedValueBox<[Key: Gauge]>([:])

    let spoolEntries = Gauge(label: "lmtphook_spool_entries")
    let spoolBytes = Gauge(label: "lmtphook_spool_bytes")
    let spoolOldestAge = Gauge(label: "lmtphook_spool_oldest_age_seconds")
    let deadLetters = Gauge(label: "lmtphook_spool_dead_letters")
    let deadLetterBytes = Gauge(label: "lmtphook_spool_dead_letter_bytes")
    let spoolWritable = Gauge(label: "lmtphook_spool_writable")

    /// Creates every labelled series at zero for these endpoints, so rates and alerts work from
    /// the start (a series appears in Prometheus only once it exists).
    func prime(endpoints: [String]) {
        for status in ["delivered", "queued", "bounced", "deferred", "rejected"] {
            _ = counter("lmtphook_recipients_total", [("status", status)])
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
    func recipient(_ status: String) {
        counter("lmtphook_recipients_total", [("status", status)]).increment()
    }

    /// One webhook request: its outcome (`delivered`, `transient`, `permanent`) and `kind` (`sync`, `retry`).
    func request(endpoint: String, outcome: DeliveryOutcome, kind: String, seconds: Double) {
        let label: String
        switch outcome {
        case .delivered: label = "delivered"
        case .transient: label = "transient"
        case .permanent: label = "permanent"
        }
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
    func deadLettered(endpoint: String, reason: String) {
        counter("lmtphook_dead_letters_total", [("endpoint", endpoint), ("reason", reason)]).increment()
    }

    /// 1 while the endpoint's circuit is open (new mail skips the sync attempt), else 0.
    func circuit(endpoint: String, open: Bool) {
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
