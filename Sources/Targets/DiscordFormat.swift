/// Discord execute-webhook: one embed (title = subject, author = sender, description = readable
/// text, a field listing attachments, footer = delivery id) and `allowed_mentions: {parse: []}` so
/// that nothing in a mail pings `@everyone` or a role. Markdown in the text is escaped. Limits in
/// UTF-16 units (Discord counts JavaScript string length): title 256, description 4,096, field
/// value 1,024, author 256, footer 2,048, username 80, all embed text together 6,000.
/// lmtphook adds `wait=true` to the URL so that Discord answers with the saved message; success
/// needs its `id` (without `wait`, Discord answers 204 even for messages it dropped).
package enum DiscordFormat {
    package static let titleLimit = 256
    package static let descriptionLimit = 4_096
    package static let fieldLimit = 1_024
    package static let authorLimit = 256
    package static let footerLimit = 2_048
    package static let embedTotalLimit = 6_000
    package static let usernameLimit = 80

    package static func render(_ mail: MailSummary, options: FormatOptions) -> RenderedBody {
        let measure = ChatMarkup.markdownMeasure(.utf16)
        let plain = TextLimit(0, .utf16)
        let title = TextLimit(titleLimit, .utf16).truncate(mail.subject)  // titles are not markdown
        let author = TextLimit(authorLimit, .utf16).truncate(mail.fromDisplay)
        let footer = "lmtphook id \(mail.id)"
        let attachments =
            mail.attachments.isEmpty
            ? nil : AttachmentList.lines(mail, prefix: "• ", limit: fieldLimit, measure: measure)
        let used =
            plain.length(of: title) + plain.length(of: author) + plain.length(of: footer)
            + (attachments.map { plain.length(of: ChatMarkup.markdown($0)) + plain.length(of: "Attachments") } ?? 0)
        let descriptionBudget = min(descriptionLimit, embedTotalLimit - used)
        let description = ChatMarkup.markdown(TextLimit.truncate(mail.text, toFit: descriptionBudget, measure: measure))
        return .json { json in
            json.field("username", TextLimit(usernameLimit, .utf16).truncate(options.username ?? "lmtphook"))
            json.array("embeds") { json in
                json.object { json in
                    json.field("title", title)
                    if !description.isEmpty { json.field("description", description) }
                    json.object("author") { $0.field("name", author) }
                    if let attachments {
                        json.array("fields") { json in
                            json.object { json in
                                json.field("name", "Attachments")
                                json.field("value", ChatMarkup.markdown(attachments))
                                json.field("inline", false)
                            }
                        }
                    }
                    json.object("footer") { $0.field("text", footer) }
                }
            }
            json.object("allowed_mentions") { $0.array("parse") { _ in } }
        }
    }

    /// The webhook URL with `wait=true`, so that Discord confirms the message was saved.
    package static func waitingURL(_ url: String) -> String {
        if url.contains("wait=") { return url }
        return url + (url.contains("?") ? "&" : "?") + "wait=true"
    }
}
