import Metrics

/// What the LMTP side reports through swift-metrics (a no-op until the process bootstraps a
/// metrics backend, e.g. Prometheus): connections, transactions, replies by code class, bytes.
struct LMTPServerMetrics: Sendable {
    let connections = Counter(label: "lmtphook_lmtp_connections_total")
    let activeConnections = Meter(label: "lmtphook_lmtp_connections_active")
    let transactions = Counter(label: "lmtphook_lmtp_transactions_total")
    /// Messages received in full whose per-recipient replies are not sent yet (waiting for a
    /// delivery slot or in delivery): the window in which a crash must not lose an acknowledged message.
    let deliveriesActive = Meter(label: "lmtphook_lmtp_deliveries_active")
    let messageBytes = Counter(label: "lmtphook_lmtp_message_bytes_total")
    let messageSize = Recorder(label: "lmtphook_lmtp_message_size_bytes", aggregate: true)
    private let replies: [Counter] = (2...5).map {
        Counter(label: "lmtphook_lmtp_replies_total", dimensions: [("class", "\($0)xx")])
    }

    private let refusals: [LMTPServer.Refusal: Counter] = [
        LMTPServer.Refusal.notAllowed, .tooManyConnections, .tooManyFromPeer,
    ].reduce(into: [:]) {
        $0[$1] = Counter(label: "lmtphook_lmtp_connections_refused_total", dimensions: [("reason", $1.rawValue)])
    }

    func refused(_ refusal: LMTPServer.Refusal) { refusals[refusal]?.increment() }

    func reply(code: Int) {
        let index = code / 100 - 2
        if replies.indices.contains(index) { replies[index].increment() }
    }
}
