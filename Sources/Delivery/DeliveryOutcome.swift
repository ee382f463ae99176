import Targets
import WebhookClient

/// How a webhook answer is treated. Protocol-neutral: a permanent refusal carries the HTTP
/// status; what that means to the MTA (which reply code) is the relay's business.
package enum DeliveryOutcome: Sendable, Hashable {
    case delivered
    /// Worth retrying: timeouts, connection/TLS/DNS errors, 408, 425, 429, 5xx, a 2xx that
    /// fails the endpoint's success rule.
    case transient(reason: String)
    /// Will not get better: other 4xx and 3xx (redirects are never followed).
    case permanent(status: Int, reason: String)

    package static func classify(_ response: WebhookResponse, rule: SuccessRule = SuccessRule()) -> DeliveryOutcome {
        if let error = response.error { return .transient(reason: "\(error.kind.rawValue): \(error.message)") }
        let status = response.status
        if (200..<300).contains(status), let violation = rule.violation(status: status, body: response.snippet) {
            return .transient(reason: violation)
        }
        let snippet = String(response.snippet.prefix(80)).map { $0.isNewline ? " " : $0 }
        let detail = snippet.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(String(snippet))"
        switch status {
        case 200..<300: return .delivered
        case 408, 425, 429, 500..<600, 100..<200: return .transient(reason: detail)
        case 300..<400:
            return .permanent(status: status, reason: "webhook redirected (\(detail)); redirects are not followed")
        case 404, 410: return .permanent(status: status, reason: "webhook rejected the recipient (\(detail))")
        case 413: return .permanent(status: status, reason: "webhook says message too big (\(detail))")
        case 400, 422: return .permanent(status: status, reason: "webhook rejected the content (\(detail))")
        case 401, 403: return .permanent(status: status, reason: "webhook refused (\(detail))")
        default: return .permanent(status: status, reason: "webhook rejected (\(detail))")
        }
    }

    /// The metric label: `delivered`, `transient` or `permanent`.
    package var label: String {
        switch self {
        case .delivered: "delivered"
        case .transient: "transient"
        case .permanent: "permanent"
        }
    }
}
