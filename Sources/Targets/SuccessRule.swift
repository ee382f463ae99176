import Foundation

/// What a 2xx answer must also show before a delivery counts as done, for targets whose 2xx alone
/// proves nothing (Discord without `wait`, a proxy that answers 200 with an error page). An answer
/// that fails the rule is treated as a transient failure: the message is retried, not lost.
package struct SuccessRule: Sendable, Hashable {
    /// Accepted statuses; `nil` accepts any 2xx.
    package var statuses: Set<Int>?
    /// The response body, trimmed, must equal this (Slack: `ok`).
    package var body: String?
    /// The response body must be a JSON object with this key, non-null (Discord: `id`).
    package var jsonField: String?

    package init(statuses: Set<Int>? = nil, body: String? = nil, jsonField: String? = nil) {
        self.statuses = statuses
        self.body = body
        self.jsonField = jsonField
    }

    /// `nil` when a 2xx `status` with `body` satisfies the rule, else why not.
    package func violation(status: Int, body responseBody: String) -> String? {
        if let statuses, !statuses.contains(status) {
            return "HTTP \(status) is not one of the accepted statuses \(statuses.sorted())"
        }
        if let body, responseBody.trimmed != body { return "HTTP \(status) without the expected body '\(body)'" }
        if let jsonField {
            guard let data = responseBody.data(using: .utf8),
                let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                let value = object[jsonField], !(value is NSNull)
            else {
                return "HTTP \(status) without '\(jsonField)' in a JSON body (the target did not confirm the message)"
            }
        }
        return nil
    }

    /// A short description for `check-config`.
    package var summary: String {
        var parts: [String] = [statuses.map { "status in \($0.sorted())" } ?? "any 2xx"]
        if let body { parts.append("body '\(body)'") }
        if let jsonField { parts.append("JSON field '\(jsonField)'") }
        return parts.joined(separator: ", ")
    }
}
