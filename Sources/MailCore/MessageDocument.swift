#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JSON document POSTed for one message (preview schema `lmtphook.message.v0`; payload v1 with
/// full MIME parsing supersedes it). Keys are snake_case and sorted; absent values are `null`.
public struct MessageDocument: Sendable, Hashable, Codable {
    /// The schema identifier of this document.
    public static let schemaName = "lmtphook.message.v0"

    public var schema: String
    /// Stable id of this message at lmtphook (also in the LMTP replies and the `Idempotency-Key` header).
    public var id: String
    /// When the final dot was received, RFC 3339 UTC with milliseconds.
    public var receivedAt: String
    public var envelope: MailEnvelope
    /// The `Message-ID` header as sent (angle brackets kept), or `null`.
    public var messageID: String?
    /// The `Subject` header as sent (unfolded, not yet RFC 2047-decoded), or `null`.
    public var subject: String?
    /// Size of the raw message in bytes.
    public var size: Int
    /// The raw message, exactly as received after dot-unstuffing, base64-encoded.
    public var rawBase64: String

    enum CodingKeys: String, CodingKey {
        case schema, id, receivedAt = "received_at", envelope, messageID = "message_id", subject, size, rawBase64 = "raw_base64"
    }

    /// Builds the document for a raw message.
    public init(id: String, receivedAt: UnixTime, envelope: MailEnvelope, raw: [UInt8]) {
        let headers = HeaderBlock(parsing: raw)
        self.schema = Self.schemaName
        self.id = id
        self.receivedAt = receivedAt.rfc3339
        self.envelope = envelope
        self.messageID = headers.first("Message-ID")?.text
        self.subject = headers.first("Subject")?.text
        self.size = raw.count
        self.rawBase64 = Data(raw).base64EncodedString()
    }

    /// The document as compact JSON with sorted keys (explicit `null`s for absent optional fields).
    public func jsonBytes() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schema, forKey: .schema)
        try container.encode(id, forKey: .id)
        try container.encode(receivedAt, forKey: .receivedAt)
        try container.encode(envelope, forKey: .envelope)
        try container.encode(messageID, forKey: .messageID)
        try container.encode(subject, forKey: .subject)
        try container.encode(size, forKey: .size)
        try container.encode(rawBase64, forKey: .rawBase64)
    }
}
