/// The markdown message of Mattermost, Rocket.Chat and Zulip: the subject in bold, the sender,
/// the readable text, the attachment list; everything from the mail escaped with
/// ``ChatMarkup/markdown(_:)``, the text truncated so that the whole message fits `limit`.
enum MarkdownMessage {
    static func compose(
        _ mail: MailSummary,
        limit: TextLimit,
        bold: String = "**",
        includeSubject: Bool = true,
        dialect: ChatMarkup.MarkdownDialect = .commonMark
    ) -> String {
        let measure = ChatMarkup.markdownMeasure(limit.unit, dialect: dialect)
        let escape = { (text: String) in ChatMarkup.markdown(text, dialect: dialect) }
        var head = ""
        if includeSubject {
            head += bold + escape(TextLimit.truncate(mail.subject, toFit: 250, measure: measure)) + bold + "\n"
        }
        head += "From: " + escape(TextLimit.truncate(mail.fromDisplay, toFit: 300, measure: measure))
        var tail = ""
        if !mail.attachments.isEmpty {
            tail =
                "\n\n" + bold + "Attachments" + bold + "\n"
                + escape(AttachmentList.lines(mail, prefix: "- ", limit: min(2_000, limit.limit / 4), measure: measure))
        }
        let budget = limit.limit - limit.length(of: head) - limit.length(of: tail) - 2
        let body = escape(TextLimit.truncate(mail.text, toFit: max(0, budget), measure: measure))
        return head + (body.isEmpty ? "" : "\n\n" + body) + tail
    }
}

/// Mattermost incoming webhook: `text` (markdown) within 16,383 runes, so the server never splits
/// the post; optional `username` and `channel` (if the server allows overrides). Success: 200.
package enum MattermostFormat {
    package static let limit = TextLimit(16_383, .scalars)

    package static func render(_ mail: MailSummary, options: FormatOptions) -> RenderedBody {
        .json { json in
            json.field("text", MarkdownMessage.compose(mail, limit: limit))
            if let username = options.username { json.field("username", username) }
            if let channel = options.channel { json.field("channel", channel) }
            json.object("props") { $0.field("lmtphook_id", mail.id) }
        }
    }
}

/// Rocket.Chat incoming webhook: `text` within 5,000 characters (the server's default
/// `Message_MaxAllowedSize`), bold with single `*`; optional `alias` and `channel`.
package enum RocketChatFormat {
    package static let limit = TextLimit(5_000, .characters)

    package static func render(_ mail: MailSummary, options: FormatOptions) -> RenderedBody {
        .json { json in
            json.field("text", MarkdownMessage.compose(mail, limit: limit, bold: "*"))
            if let username = options.username { json.field("alias", username) }
            if let channel = options.channel { json.field("channel", channel) }
        }
    }
}

/// Zulip REST `POST /api/v1/messages` (form-encoded, Basic auth `BOT_EMAIL:API_KEY` as a header):
/// `type=stream`, `to` = the configured stream, `topic` = the subject without `Re:`/`Fwd:`
/// prefixes (so a thread stays in one topic) within 60 characters, `content` within 10,000 UTF-8
/// bytes.
package enum ZulipFormat {
    package static let topicLimit = TextLimit(60, .characters)
    package static let contentLimit = TextLimit(10_000, .utf8Bytes)

    package static func render(_ mail: MailSummary, options: FormatOptions) -> RenderedBody {
        let topic = topicLimit.truncate(threadTopic(mail.subject), marker: "…")
        let content = MarkdownMessage.compose(mail, limit: contentLimit, includeSubject: false, dialect: .zulip)
        let fields = [("type", "stream"), ("to", options.stream ?? ""), ("topic", topic), ("content", content)]
        let body = fields.map { "\($0.0)=\(formEncode($0.1))" }.joined(separator: "&")
        return RenderedBody(contentType: "application/x-www-form-urlencoded", bytes: Array(body.utf8))
    }

    /// The subject without reply/forward prefixes (`Re:`, `RE:`, `Fwd:`, `Fw:`, `AW:`, `WG:`, `SV:`, `Antw:`), repeated or not.
    package static func threadTopic(_ subject: String) -> String {
        var text = Substring(subject)
        let prefixes = ["re", "fwd", "fw", "aw", "wg", "sv", "antw", "tr", "rv"]
        var changed = true
        while changed {
            changed = false
            text = text.drop { $0 == " " || $0 == "\t" }
            if let colon = text.firstIndex(of: ":"), prefixes.contains(text[..<colon].lowercased().trimmed) {
                text = text[text.index(after: colon)...]
                changed = true
            }
        }
        let topic = String(text).trimmed
        return topic.isEmpty ? "(no subject)" : topic
    }

    static func formEncode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "*"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            case UInt8(ascii: " "): out += "+"
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 15)])
            }
        }
        return out
    }
}
