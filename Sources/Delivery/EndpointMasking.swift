import Foundation
import Targets
import WebhookClient

/// What of an endpoint may be shown or stored: URLs without credentials and token-like parts,
/// header values only for harmless headers. Every CLI output and the spool use this; secrets
/// stay in the configuration.
package enum EndpointMasking {
    /// The URL with its password, token-like path segments and query values replaced by `****`
    /// (Slack and Discord URLs carry their secret in the path; user-info carries basic auth).
    package static func url(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "****" }
        func secretLike(_ text: String) -> Bool {
            text.count >= 16 && text.contains(where: \.isLetter) && text.contains(where: \.isNumber) || text.count >= 24
        }
        components.percentEncodedPath = components.percentEncodedPath.split(
            separator: "/",
            omittingEmptySubsequences: false
        )
        .map { secretLike(String($0)) ? "****" : String($0) }.joined(separator: "/")
        components.queryItems = components.queryItems?.map {
            ["wait", "thread_id"].contains($0.name)
                ? $0 : URLQueryItem(name: $0.name, value: $0.value == nil ? nil : "****")
        }
        if components.password != nil { components.password = "****" }
        return components.string ?? "****"
    }

    /// The header's value, or `****` unless it is one that never carries a secret.
    package static func header(_ header: WebhookHeader) -> String {
        ["content-type", "accept", "user-agent", "x-atlassian-token"].contains(header.name.lowercased())
            ? header.value : "****"
    }
}

/// What a spooled entry needs from its endpoint to be delivered as it would have been: format,
/// method, the names of its headers, whether it is signed, its success rule. Recorded in the
/// entry (names and flags only, never values), so that a replay outside the daemon can refuse
/// to send an entry with less than its endpoint would send, and say what is missing.
package struct EndpointRequirements: Sendable, Hashable {
    package var format: String
    package var method: String
    /// Header names, lowercased, sorted.
    package var headers: [String]
    package var signed: Bool
    /// The success rule's summary.
    package var success: String
    /// The URL carries credentials or tokens (the spool keeps it masked, so only the
    /// configuration can send it).
    package var urlHasSecrets: Bool

    package init(_ endpoint: WebhookEndpoint) {
        format = endpoint.format.rawValue
        method = endpoint.method
        headers = endpoint.headers.map { $0.name.lowercased() }.sorted()
        signed = endpoint.signer.isEnabled
        success = endpoint.successRule.summary
        urlHasSecrets = EndpointMasking.url(endpoint.url) != endpoint.url
    }

    /// As stored in spool metadata.
    package var stored: [String: String] {
        [
            "format": format, "method": method, "headers": headers.joined(separator: ","),
            "signed": signed ? "yes" : "no", "success": success, "url_secrets": urlHasSecrets ? "yes" : "no",
        ]
    }

    package init?(stored: [String: String]?) {
        guard let stored, let format = stored["format"], let method = stored["method"] else { return nil }
        self.format = format
        self.method = method
        headers = (stored["headers"] ?? "").split(separator: ",").map(String.init)
        signed = stored["signed"] == "yes"
        success = stored["success"] ?? SuccessRule().summary
        urlHasSecrets = stored["url_secrets"] == "yes"
    }

    /// What `endpoint` lacks of these requirements, each as a short phrase (empty: nothing).
    package func missing(in endpoint: WebhookEndpoint) -> [String] {
        let current = EndpointRequirements(endpoint)
        var missing: [String] = []
        if current.format != format { missing.append("format \(format)") }
        if current.method != method { missing.append("method \(method)") }
        let absent = headers.filter { !current.headers.contains($0) }
        if !absent.isEmpty { missing.append("header\(absent.count == 1 ? "" : "s") \(absent.joined(separator: ", "))") }
        if signed && !current.signed { missing.append("its signing secret") }
        if current.success != success { missing.append("success rule \(success)") }
        return missing
    }
}
