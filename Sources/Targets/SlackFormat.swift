/// Slack incoming webhook (app-based): `text` (the notification fallback) and `blocks`: a header
/// with the subject, a context line with the sender, the readable text in sections, and the
/// attachment list. Limits in characters after escaping: header 150, section 3,000, all body
/// sections together 12,000 (Slack rejects messages whose blocks total about 13,200), at most 50
/// blocks. Only `&`, `<`, `>` are escaped, so mail text cannot form `<!channel>` or `<url|label>`.
/// Success: HTTP 200 with body `ok`.
package enum SlackFormat {
    package static let headerLimit = 150
    package static let sectionLimit = 3_000
    package static let bodyLimit = 12_000
    package static let fallbackLimit = 3_000

    package static func render(_ mail: MailSummary) -> RenderedBody {
        let measure = ChatMarkup.slackLength
        let body = TextLimit.truncate(mail.text, toFit: bodyLimit, measure: measure)
        let sections = TextLimit.split(body, pieceLimit: sectionLimit, measure: measure)
        return .json { json in
            json.field(
                "text",
                ChatMarkup.slack(
                    TextLimit.truncate(
                        "Mail from \(mail.fromDisplay): \(mail.subject)",
                        toFit: fallbackLimit,
                        measure: measure
                    )
                )
            )
            json.array("blocks") { json in
                json.object { json in
                    json.field("type", "header")
                    json.object("text") { json in
                        json.field("type", "plain_text")
                        json.field(
                            "text",
                            ChatMarkup.slack(TextLimit.truncate(mail.subject, toFit: headerLimit, measure: measure))
                        )
                        json.field("emoji", false)
                    }
                }
                json.object { json in
                    json.field("type", "context")
                    json.array("elements") { json in
                        json.object { json in
                            json.field("type", "mrkdwn")
                            json.field(
                                "text",
                                "From: "
                                    + ChatMarkup.slack(
                                        TextLimit.truncate(mail.fromDisplay, toFit: 2_900, measure: measure)
                                    )
                            )
                        }
                    }
                }
                for section in sections where !section.trimmed.isEmpty {
                    json.object { json in
                        json.field("type", "section")
                        json.object("text") { json in
                            json.field("type", "mrkdwn")
                            json.field("text", ChatMarkup.slack(section))
                        }
                    }
                }
                if !mail.attachments.isEmpty {
                    json.object { json in
                        json.field("type", "section")
                        json.object("text") { json in
                            json.field("type", "mrkdwn")
                            let list = AttachmentList.lines(
                                mail,
                                prefix: "• ",
                                limit: sectionLimit - 20,
                                measure: measure
                            )
                            json.field("text", "*Attachments*\n" + ChatMarkup.slack(list))
                        }
                    }
                }
            }
            json.field("unfurl_links", false)
            json.field("unfurl_media", false)
        }
    }
}

/// The attachment list of a chat message, cut to fit with a count of what was left out.
enum AttachmentList {
    static func lines(_ mail: MailSummary, prefix: String, limit: Int, measure: (Character) -> Int) -> String {
        var out: [String] = []
        var used = 0
        let all = mail.attachmentLines
        for (index, line) in all.enumerated() {
            let entry = prefix + line
            let cost = entry.reduce(0) { $0 + measure($1) } + 1
            let remaining = all.count - index
            let moreNote = "… and \(remaining) more"
            if used + cost + moreNote.count + 1 > limit && remaining > 1 || used + cost > limit {
                out.append(TextLimit.truncate(moreNote, toFit: max(0, limit - used), measure: measure))
                break
            }
            out.append(entry)
            used += cost
        }
        return out.joined(separator: "\n")
    }
}
