/// What became of one message for one endpoint's recipients, as the engine reports it. The relay
/// maps it to its protocol's replies (LMTP codes); the engine knows none.
package enum Disposition: Sendable, Equatable {
    /// The endpoint accepted it (an answer that passed its success rule).
    case delivered(webhookID: String)
    /// It is durably in the spool (fsync'd) and will be retried.
    case queued(spoolID: String, webhookID: String, reason: String)
    /// It failed for now and nothing kept it (no spool): the sender should try again.
    case deferred(webhookID: String, reason: String)
    /// The endpoint refused it for good (`status`: the HTTP status, 0 when there was none).
    case bounced(webhookID: String, status: Int, reason: String)
    /// It could not be taken at all (the spool could not store it): the sender keeps it.
    case notTaken(webhookID: String, reason: String)

    /// The metric and log label: `delivered`, `queued`, `deferred`, `bounced`.
    package var label: String {
        switch self {
        case .delivered: "delivered"
        case .queued: "queued"
        case .deferred, .notTaken: "deferred"
        case .bounced: "bounced"
        }
    }

    /// The webhook id (stable across every attempt and replay).
    package var webhookID: String {
        switch self {
        case .delivered(let id), .queued(_, let id, _), .deferred(let id, _), .bounced(let id, _, _),
            .notTaken(let id, _):
            id
        }
    }
}
