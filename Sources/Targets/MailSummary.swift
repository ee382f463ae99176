import MailCore

/// What a chat message shows of a mail: who wrote, the subject, the readable text and the list of
/// attachments. Built once from the parsed message; every chat format renders from it.
package struct MailSummary: Sendable {
    /// The webhook id of this delivery (stable across retries).
    package var id: String
    /// The author's display name, if the From header has one.
    package var fromName: String?
    /// The author's address (From header, else the envelope sender, else empty).
    package var fromAddress: String
    /// The subject, or `(no subject)`.
    package var subject: String
    /// Whether the message had a subject at all.
    package var hasSubject: Bool
    /// The readable text: quoted replies and the signature trimmed (see ``ReadableText``).
    package var text: String
    /// The whole text body (plain, or derived from HTML), line endings normalised.
    package var fullText: String
    package var attachments: [MailAttachment]
    /// The envelope recipients this delivery is for.
    package var recipients: [String]
    /// Plus-address tags of those recipients (`support+billing@` → `billing`), in order, unique.
    package var tags: [String]
    /// The route that matched, if any.
    package var route: String?

    package init(id: String, message: ParsedMessage, envelope: MailEnvelope, tags: [String] = [], route: String? = nil)
    {
        self.id = id
        let author = message.from.first ?? message.sender
        fromName = author?.name.flatMap { $0.isEmpty ? nil : $0 }
        fromAddress = author?.address ?? envelope.mailFrom
        let subject = (message.subject ?? "").trimmed
        hasSubject = !subject.isEmpty
        self.subject = subject.isEmpty ? "(no subject)" : subject
        let body = ReadableText.normalisedLines(message.text ?? "").joined(separator: "\n").trimmingTrailingWhitespace()
        fullText = body
        text = ReadableText.extract(body)
        attachments = message.attachments
        recipients = envelope.rcptTo
        self.tags = tags
        self.route = route
    }

    /// `Name <address>`, or the address alone.
    package var fromDisplay: String {
        guard let fromName else { return fromAddress.isEmpty ? "(unknown sender)" : fromAddress }
        return fromAddress.isEmpty ? fromName : "\(fromName) <\(fromAddress)>"
    }

    /// One line per attachment: `name (12.3 KB)`.
    package var attachmentLines: [String] {
        attachments.map { "\($0.filename ?? "(unnamed \($0.contentType))") (\(Self.humanSize($0.size)))" }
    }

    /// `512 B`, `12.3 KB`, `4.0 MB` (powers of 1024).
    package static func humanSize(_ bytes: Int) -> String {
        if bytes < 1024 { return "\(bytes) B" }
        let units = ["KB", "MB", "GB", "TB"]
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}
