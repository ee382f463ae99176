import Crypto
import Foundation
import MessageData

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
        // A body in memory cannot fail to read.
        (try? signature(id: id, timestamp: timestamp, body: RequestBody(bytes: body))) ?? ""
    }

    /// The `webhook-signature` value for one attempt over a body that may be streamed from a
    /// file (one pass over it per secret set; blocking). Throws when a file part cannot be read.
    package func signature(id: String, timestamp: Int64, body: RequestBody) throws -> String {
        let prefix = Array("\(id).\(timestamp).".utf8)
        var macs = keys.map { HMAC<SHA256>(key: $0) }
        for index in macs.indices { macs[index].update(data: prefix) }
        try body.forEachChunk { chunk in
            for index in macs.indices { macs[index].update(data: chunk) }
        }
        return macs.map { "v1," + Data($0.finalize()).base64EncodedString() }.joined(separator: " ")
    }

    /// The three Standard Webhooks headers (signature only when secrets are configured).
    package func headers(id: String, timestamp: Int64, body: [UInt8]) -> [WebhookHeader] {
        (try? headers(id: id, timestamp: timestamp, body: RequestBody(bytes: body))) ?? []
    }

    /// The three Standard Webhooks headers over a body that may be streamed from a file.
    package func headers(id: String, timestamp: Int64, body: RequestBody) throws -> [WebhookHeader] {
        var headers = [WebhookHeader("webhook-id", id), WebhookHeader("webhook-timestamp", String(timestamp))]
        if isEnabled {
            headers.append(WebhookHeader("webhook-signature", try signature(id: id, timestamp: timestamp, body: body)))
        }
        return headers
    }
}
