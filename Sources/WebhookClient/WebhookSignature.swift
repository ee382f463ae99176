import Crypto
import Foundation

/// Standard Webhooks signing (https://www.standardwebhooks.com, spec v1): `webhook-id`,
/// `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
/// one signature per secret (space-separated) so secrets can be rotated.
package struct WebhookSigner: Sendable {
    /// The raw keys (the base64 part of `whsec_…`, decoded).
    private let keys: [SymmetricKey]

    /// Why a secret was refused.
    package struct InvalidSecret: Error, CustomStringConvertible, Sendable {
        package let description: String
    }

    /// A signer without secrets (requests carry `webhook-id` and `webhook-timestamp`, no signature).
    package static let none = try! WebhookSigner(secrets: [])

    /// `secrets` in the `whsec_<base64>` form (the prefix is optional); each key 24–64 bytes.
    package init(secrets: [String]) throws {
        keys = try secrets.map { secret in
            let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
            guard let data = Data(base64Encoded: encoded) else {
                throw InvalidSecret(description: "webhook secret is not base64 (expected whsec_<base64>)")
            }
            guard (24...64).contains(data.count) else {
                throw InvalidSecret(description: "webhook secret must decode to 24-64 bytes, got \(data.count)")
            }
            return SymmetricKey(data: data)
        }
    }

    /// `true` when there is at least one secret.
    package var isEnabled: Bool { !keys.isEmpty }
    /// How many secrets sign each request.
    package var secretCount: Int { keys.count }

    /// The `webhook-signature` value for one attempt.
    package func signature(id: String, timestamp: Int64, body: [UInt8]) -> String {
        var content = Array("\(id).\(timestamp).".utf8)
        content += body
        return keys.map { key in
            let mac = HMAC<SHA256>.authenticationCode(for: content, using: key)
            return "v1," + Data(mac).base64EncodedString()
        }.joined(separator: " ")
    }

    /// The three Standard Webhooks headers (signature only when secrets are configured).
    package func headers(id: String, timestamp: Int64, body: [UInt8]) -> [WebhookHeader] {
        var headers = [WebhookHeader("webhook-id", id), WebhookHeader("webhook-timestamp", String(timestamp))]
        if isEnabled {
            headers.append(WebhookHeader("webhook-signature", signature(id: id, timestamp: timestamp, body: body)))
        }
        return headers
    }
}
