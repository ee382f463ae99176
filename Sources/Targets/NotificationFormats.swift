/// ntfy JSON publish (`POST https://host/` with the topic in the body): `title` = subject,
/// `message` = sender, readable text and attachment list within 4,096 UTF-8 bytes (longer messages
/// would become a file attachment), `tags` `email` plus the recipient's plus-tags, optional
/// `priority` 1–5. No markdown (ntfy shows it literally unless asked). Success: 200 with the id.
package enum NtfyFormat {
    package static let messageLimit = TextLimit(4_096, .utf8Bytes)
    package static let titleLimit = TextLimit(250, .characters)

    package static func render(_ mail: MailSummary, options: FormatOptions) -> RenderedBody {
        .json { json in
            json.field("topic", options.topic ?? "")
            json.field("title", titleLimit.truncate(mail.subject))
            json.field("message", PlainMessage.compose(mail, limit: messageLimit))
            json.array("tags") { json in
                json.string("email")
                for tag in mail.tags { json.string(tag) }
            }
            if let priority = options.priority { json.field("priority", min(5, max(1, priority))) }
        }
    }
}

/// Gotify `POST /message` (token in `X-Gotify-Key`): `title`, `message` (plain text, shown with
/// `client::display` `text/plain`), `priority` 0–10 (default 5). Gotify sets no documented
/// limit; lmtphook keeps messages within 16,384 characters. Success: 200 with the message's id.
package enum GotifyFormat {
    package static let messageLimit = TextLimit(16_384, .characters)
    package static let titleLimit = TextLimit(250, .characters)

    package static func render(_ mail: MailSummary, options: FormatOptions) -> RenderedBody {
        .json { json in
            json.field("title", titleLimit.truncate(mail.subject))
            json.field("message", PlainMessage.compose(mail, limit: messageLimit))
            json.field("priority", min(10, max(0, options.priority ?? 5)))
            json.object("extras") { json in
                json.object("client::display") { $0.field("contentType", "text/plain") }
            }
        }
    }
}

/// matrix-hookshot generic webhook: `text` (plain), `html` (the same, escaped, with the subject in
/// bold), optional `username`. `@room` is broken so that it notifies nobody. The text is kept
/// within 24,000 UTF-8 bytes so that the event stays well under Matrix's 65,536-byte limit.
package enum MatrixFormat {
    package static let textLimit = TextLimit(24_000, .utf8Bytes)

    package static func render(_ mail: MailSummary, options: FormatOptions) -> RenderedBody {
        let plain = ChatMarkup.matrixPlain(PlainMessage.compose(mail, limit: textLimit, includeSubject: true))
        let bodyText = PlainMessage.compose(mail, limit: textLimit, includeSubject: false)
        let html =
            "<p><strong>" + ChatMarkup.html(ChatMarkup.matrixPlain(mail.subject)) + "</strong></p><pre>"
            + ChatMarkup.html(ChatMarkup.matrixPlain(bodyText)) + "</pre>"
        return .json { json in
            json.field("text", plain)
            json.field("html", html)
            if let username = options.username { json.field("username", username) }
        }
    }
}

/// The plain-text message of notification targets (no markup is interpreted there).
enum PlainMessage {
    static func compose(_ mail: MailSummary, limit: TextLimit, includeSubject: Bool = false) -> String {
        var head = includeSubject ? mail.subject + "\n" : ""
        head += "From: " + mail.fromDisplay
        let measure: (Character) -> Int = { limit.length(of: String($0)) }
        var tail = ""
        if !mail.attachments.isEmpty {
            tail =
                "\n\nAttachments:\n"
                + AttachmentList.lines(mail, prefix: "- ", limit: min(1_000, limit.limit / 4), measure: measure)
        }
        head = TextLimit.truncate(head, toFit: limit.limit / 4, measure: measure)
        let budget = limit.limit - limit.length(of: head) - limit.length(of: tail) - 2
        let body = TextLimit.truncate(mail.text, toFit: max(0, budget), measure: measure)
        return head + (body.isEmpty ? "" : "\n\n" + body) + tail
    }
}

/// Microsoft Teams via a Workflows webhook: a message with one Adaptive Card, version 1.4 (newer
/// versions are rejected inside the flow, after a 202): a bold subject, a FactSet (from, to,
/// attachments) and the readable text in a wrapping TextBlock. The whole request is kept within
/// 20,000 UTF-8 bytes (Teams' limit is 28 KB, about 21 KB in practice). Markdown links in mail
/// text are broken with a zero-width space. Success: 202 (the flow reports later failures only in
/// its run history).
package enum TeamsFormat {
    package static let requestLimit = 20_000

    package static func render(_ mail: MailSummary) -> RenderedBody {
        let subject = ChatMarkup.neutraliseLinks(TextLimit(200, .characters).truncate(mail.subject))
        let from = ChatMarkup.neutraliseLinks(TextLimit(300, .characters).truncate(mail.fromDisplay))
        let to = TextLimit(500, .characters).truncate(mail.recipients.joined(separator: ", "))
        let attachments =
            mail.attachments.isEmpty
            ? nil
            : AttachmentList.lines(mail, prefix: "", limit: 1_000, measure: { _ in 1 }).split(separator: "\n").joined(
                separator: ", "
            )
        func card(text: String) -> RenderedBody {
            .json { json in
                json.field("type", "message")
                json.array("attachments") { json in
                    json.object { json in
                        json.field("contentType", "application/vnd.microsoft.card.adaptive")
                        json.key("contentUrl")
                        json.null()
                        json.object("content") { json in
                            json.field("$schema", "http://adaptivecards.io/schemas/adaptive-card.json")
                            json.field("type", "AdaptiveCard")
                            json.field("version", "1.4")
                            json.array("body") { json in
                                json.object { json in
                                    json.field("type", "TextBlock")
                                    json.field("text", subject)
                                    json.field("weight", "Bolder")
                                    json.field("size", "Medium")
                                    json.field("wrap", true)
                                }
                                json.object { json in
                                    json.field("type", "FactSet")
                                    json.array("facts") { json in
                                        json.object {
                                            $0.field("title", "From")
                                            $0.field("value", from)
                                        }
                                        json.object {
                                            $0.field("title", "To")
                                            $0.field("value", to)
                                        }
                                        if let attachments {
                                            json.object {
                                                $0.field("title", "Attachments")
                                                $0.field("value", attachments)
                                            }
                                        }
                                    }
                                }
                                if !text.isEmpty {
                                    json.object { json in
                                        json.field("type", "TextBlock")
                                        json.field("text", text)
                                        json.field("wrap", true)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let empty = card(text: "")
        let budget = requestLimit - empty.bytes.count - 100
        let text = TextLimit.truncate(
            ChatMarkup.neutraliseLinks(mail.text),
            toFit: max(0, budget),
            measure: ChatMarkup.jsonLength
        )
        return card(text: text)
    }
}
