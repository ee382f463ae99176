import Crypto
import MessageData

/// What to put in the payload besides the parsed fields.
package struct PayloadOptions: Sendable, Hashable {
    /// How attachments appear.
    package enum Attachments: Sendable, Hashable {
        /// Name, type, size, hashes; no content (the default: small requests).
        case metadata
        /// Also `content_base64` for attachments up to `maxBytes` decoded bytes.
        case inline(maxBytes: Int)
        /// No attachments in the payload at all (`attachments: []`); the raw message still has them.
        case omit
    }

    package var attachments: Attachments
    /// Whether `raw_base64` carries the whole message (otherwise `null`).
    package var includeRaw: Bool

    package init(attachments: Attachments = .metadata, includeRaw: Bool = true) {
        self.attachments = attachments
        self.includeRaw = includeRaw
    }
}

/// The webhook payload, schema version 1 (documented in the README; JSON Schema in
/// `deploy/schema/payload-v1.schema.json`). Every key is always present: empty lists are `[]`,
/// absent values `null`.
package enum MessagePayload {
    package static let schemaVersion = 1

    /// The idempotency key: the same message bytes for the same recipients and endpoint always
    /// give the same id (26 characters of Crockford base32 of a SHA-256), so a receiver can drop
    /// the duplicate when an MTA redelivers after a lost connection.
    package static func id(raw: [UInt8], recipients: [String], endpoint: String) -> String {
        // Bytes in memory cannot fail to read.
        (try? id(body: .bytes(raw), recipients: recipients, endpoint: endpoint)) ?? ""
    }

    /// The idempotency key of a message in memory or in a file (read in chunks; blocking).
    package static func id(body: MessageBody, recipients: [String], endpoint: String) throws -> String {
        var hasher = SHA256()
        hasher.update(data: Array("lmtphook-v1\n\(endpoint)\n\(recipients.joined(separator: "\n"))\n\n".utf8))
        try body.forEachChunk { hasher.update(bufferPointer: $0) }
        let digest = Array(hasher.finalize())
        let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
        var output = [UInt8]()
        var buffer: UInt32 = 0
        var bits = 0
        for byte in digest.prefix(17) {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 && output.count < 26 {
                output.append(alphabet[Int(buffer >> UInt32(bits - 5) & 31)])
                bits -= 5
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Parses the message and renders the JSON document.
    package static func render(
        id: String,
        receivedAt: UnixTime,
        envelope: MailEnvelope,
        raw: [UInt8],
        options: PayloadOptions = PayloadOptions()
    ) -> (json: [UInt8], message: ParsedMessage) {
        let inlineLimit: Int?
        switch options.attachments {
        case .metadata, .omit: inlineLimit = nil
        case .inline(let maxBytes): inlineLimit = maxBytes
        }
        var message = ParsedMessage(parsing: raw, inlineAttachmentLimit: inlineLimit)
        if options.attachments == .omit { message.attachments = [] }
        return (
            render(id: id, receivedAt: receivedAt, envelope: envelope, raw: raw, message: message, options: options),
            message
        )
    }

    /// The attachment limit to parse a message with for endpoints with these options: the
    /// largest inline limit among them (`nil`: no endpoint shows attachment contents).
    package static func inlineLimit(for options: [PayloadOptions]) -> Int? {
        options.compactMap {
            if case .inline(let maxBytes) = $0.attachments { return maxBytes }
            return nil
        }.max()
    }

    /// Renders an already parsed message.
    package static func render(
        id: String,
        receivedAt: UnixTime,
        envelope: MailEnvelope,
        raw: [UInt8],
        message: ParsedMessage,
        options: PayloadOptions
    ) -> [UInt8] {
        document(
            id: id,
            receivedAt: receivedAt,
            envelope: envelope,
            body: .bytes(raw),
            message: message,
            options: options
        )
        .inMemory ?? []
    }

    /// Renders an already parsed message as a request body: with a file body, `raw_base64` is
    /// encoded from the file while the request is sent, so the document costs no memory for it.
    /// `message` should be ``ParsedMessage/shown(with:)`` for these options.
    package static func document(
        id: String,
        receivedAt: UnixTime,
        envelope: MailEnvelope,
        body: MessageBody,
        message: ParsedMessage,
        options: PayloadOptions
    ) -> RequestBody {
        let inMemory = body.isFile ? 0 : body.count
        var json = JSONWriter(capacity: (options.includeRaw ? inMemory * 4 / 3 : 0) + inMemory / 2 + 4096)
        json.beginObject()
        json.key("schema")
        json.int(schemaVersion)
        json.key("id")
        json.string(id)
        json.key("received_at")
        json.string(receivedAt.rfc3339)
        json.key("envelope")
        json.beginObject()
        json.key("mail_from")
        json.string(envelope.mailFrom)
        json.strings("rcpt_to", envelope.rcptTo)
        json.key("lhlo")
        json.string(envelope.lhlo)
        json.key("client")
        json.beginObject()
        let client = envelope.client
        for (key, value) in [
            ("name", client.name), ("addr", client.addr), ("port", client.port), ("proto", client.proto),
            ("helo", client.helo), ("ident", client.ident), ("source", client.source),
        ] {
            json.key(key)
            json.string(value)
        }
        json.endObject()
        json.key("size")
        json.int(body.count)
        json.key("smtputf8")
        json.bool(envelope.smtpUTF8)
        json.key("body")
        json.string(envelope.body)
        json.endObject()
        json.key("message_id")
        json.string(message.messageID)
        json.key("subject")
        json.string(message.subject)
        json.key("date")
        json.string(message.date)
        json.key("date_raw")
        json.string(message.dateRaw)
        json.key("from")
        addresses(message.from, into: &json)
        json.key("sender")
        if let sender = message.sender { address(sender, into: &json) } else { json.null() }
        json.key("reply_to")
        addresses(message.replyTo, into: &json)
        json.key("to")
        addresses(message.to, into: &json)
        json.key("cc")
        addresses(message.cc, into: &json)
        json.strings("in_reply_to", message.inReplyTo)
        json.strings("references", message.references)
        json.key("headers")
        json.beginArray()
        for header in message.headers {
            json.beginArray()
            json.string(header.name)
            json.string(header.value)
            json.endArray()
        }
        json.endArray()
        json.key("text")
        json.string(message.text)
        let reply = message.text.map(ReadableText.split)
        json.key("reply_text")
        json.string(reply?.reply)
        json.key("signature")
        json.string(reply?.signature)
        json.key("html")
        json.string(message.html)
        json.key("attachments")
        json.beginArray()
        for attachment in message.attachments {
            json.beginObject()
            json.key("filename")
            json.string(attachment.filename)
            json.key("content_type")
            json.string(attachment.contentType)
            json.key("size")
            json.int(attachment.size)
            json.key("disposition")
            json.string(attachment.disposition)
            json.key("content_id")
            json.string(attachment.contentID)
            json.key("sha256")
            json.string(attachment.sha256)
            json.key("content_base64")
            if let content = attachment.content { json.base64String(content) } else { json.null() }
            json.endObject()
        }
        json.endArray()
        json.key("automated")
        json.bool(message.automated || envelope.mailFrom.isEmpty)
        json.strings("authentication_results", message.authenticationResults)
        json.strings("parse_errors", message.problems)
        json.key("raw_base64")
        if options.includeRaw { json.base64String(of: body) } else { json.null() }
        json.endObject()
        return json.body
    }

    private static func addresses(_ list: [MailAddress], into json: inout JSONWriter) {
        json.beginArray()
        for entry in list { address(entry, into: &json) }
        json.endArray()
    }

    private static func address(_ entry: MailAddress, into json: inout JSONWriter) {
        json.beginObject()
        json.key("name")
        json.string(entry.name)
        json.key("address")
        json.string(entry.address)
        json.endObject()
    }
}
