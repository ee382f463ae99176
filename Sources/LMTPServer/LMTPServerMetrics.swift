import Metrics

/// What the LMTP side reports through swift-metrics (a no-op until the process bootstraps a
/// metrics backend, e.g. Prometheus): connections, transactions, replies by code class, bytes.
/// Every name starts with ``LMTPServerConfiguration/metricsPrefix``.
struct LMTPServerMetrics: Sendable {
    let connections: Counter
    let activeConnections: Meter
    let transactions: Counter
    /// Messages received in full whose per-recipient replies are not sent yet (waiting for a
    /// delivery slot or in delivery): the window in which a crash must not lose an acknowledged message.
    let deliveriesActive: Meter
    let messageBytes: Counter
    let messageSize: Recorder
    private let replies: [Counter]
    private let refusals: [LMTPServer.Refusal: Counter]

    init(prefix: String) {
        connections = Counter(label: "\(prefix)_connections_total")
        activeConnections = Meter(label: "\(prefix)_connections_active")
        transactions = Counter(label: "\(prefix)_transactions_total")
        deliveriesActive = Meter(label: "\(prefix)_deliveries_active")
        messageBytes = Counter(label: "\(prefix)_message_bytes_total")
        messageSize = Recorder(label: "\(prefix)_message_size_bytes", aggregate: true)
        replies = (2...5).map { Counter(label: "\(prefix)_replies_total", dimensions: [("class", "\($0)xx")]) }
        refusals = [LMTPServer.Refusal.notAllowed, .tooManyConnections, .tooManyFromPeer].reduce(into: [:]) {
            $0[$1] = Counter(label: "\(prefix)_connections_refused_total", dimensions: [("reason", $1.rawValue)])
        }
    }

    func refused(_ refusal: LMTPServer.Refusal) { refusals[refusal]?.increment() }

    func reply(code: Int) {
        let index = code / 100 - 2
        if replies.indices.contains(index) { replies[index].increment() }
    }
}
