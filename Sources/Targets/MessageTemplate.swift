import Foundation
import MailCore
import MessageData
import Mustache

/// Why a template could not be compiled or rendered.
package struct TemplateError: Error, Sendable, CustomStringConvertible {
    package var message: String
    package init(message: String) { self.message = message }
    package var description: String { message }
}

/// A Mustache template that renders any request body from a delivery (format `template`); the
/// ticketing templates in `deploy/templates/` are such templates.
///
/// Inside a JSON template (`contentType` `application/json`, the default) every `{{value}}` is
/// escaped for a JSON string, so a template only has to put the quotes around it; `{{{value}}}`
/// inserts it unescaped. Helpers, written as Mustache transforms:
/// `{{truncate255(subject)}}` (whole graphemes, with a marker; any number), `{{{json(text)}}}` (a
/// complete JSON string literal), `{{html(text)}}` (HTML-escaped), `{{htmllines(text)}}` (also line breaks as `<br>`), `{{markdown(text)}}`
/// (markdown-escaped, mentions broken), `lowercased`, `uppercased`; in lists `{{^last()}},{{/last()}}`
/// separates items. The values are listed in the README ("Template values").
package struct MessageTemplate: Sendable {
    package let source: String
    package let contentType: String
    private let template: MustacheTemplate

    /// Compiles `source`; errors name the line and column.
    package init(source: String, contentType: String = "application/json") throws(TemplateError) {
        Self.registerContentTypes
        self.source = source
        self.contentType = contentType
        let pragma = Self.isJSON(contentType) ? "{{% CONTENT_TYPE: JSON }}" : "{{% CONTENT_TYPE: TEXT }}"
        do {
            template = try MustacheTemplate(string: pragma + source)
        } catch let error as MustacheTemplate.ParserError {
            throw TemplateError(
                message:
                    "template error at line \(error.context.lineNumber), column \(error.context.columnNumber): \(error.error) near '\(error.context.line.trimmed)'"
            )
        } catch {
            throw TemplateError(message: "template error: \(error)")
        }
    }

    static func isJSON(_ contentType: String) -> Bool {
        let lower = contentType.lowercased()
        return lower.hasPrefix("application/json") || lower.hasSuffix("+json")
    }

    private static let registerContentTypes: Void = {
        MustacheContentTypes.register(JSONStringContentType(), named: "JSON")
    }()

    /// Renders the body; a JSON template that does not produce valid JSON is an error (the request
    /// would only be refused by the target).
    package func render(_ input: RenderInput) throws(TemplateError) -> RenderedBody {
        let text = template.render(Self.context(input))
        let bytes = Array(text.utf8)
        if Self.isJSON(contentType) {
            guard (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil else {
                throw TemplateError(message: "the template did not produce valid JSON: \(String(text.prefix(200)))")
            }
        }
        return RenderedBody(contentType: contentType, bytes: bytes)
    }

    /// The values a template sees (documented in the README).
    static func context(_ input: RenderInput) -> [String: Any] {
        let mail = input.summary
        let message = input.message
        func address(_ value: MailAddress) -> [String: Any] {
            var entry: [String: Any] = [
                "address": TemplateText(value.address),
                "display": TemplateText(value.name.map { "\($0) <\(value.address)>" } ?? value.address),
            ]
            if let name = value.name { entry["name"] = TemplateText(name) }
            return entry
        }
        let attachments = message.attachments.map { attachment -> [String: Any] in
            var entry: [String: Any] = [
                "filename": TemplateText(attachment.filename ?? "attachment"),
                "content_type": TemplateText(attachment.contentType),
                "size": attachment.size,
                "size_human": TemplateText(MailSummary.humanSize(attachment.size)),
                "sha256": TemplateText(attachment.sha256),
            ]
            if let content = attachment.content {
                var encoded: [UInt8] = []
                TransferDecoding.base64Encode(content, into: &encoded)
                entry["content_base64"] = TemplateText(String(decoding: encoded, as: UTF8.self))
            }
            return entry
        }
        var context: [String: Any] = [
            "id": TemplateText(mail.id),
            "received_at": TemplateText(input.receivedAt.rfc3339),
            "subject": TemplateText(mail.subject),
            "has_subject": mail.hasSubject,
            "from": ["address": TemplateText(mail.fromAddress), "display": TemplateText(mail.fromDisplay)]
                .merging(mail.fromName.map { ["name": TemplateText($0)] } ?? [:]) { $1 },
            "to": message.to.map(address),
            "cc": message.cc.map(address),
            "reply_to": message.replyTo.map(address),
            "text": TemplateText(mail.text),
            "text_full": TemplateText(mail.fullText),
            // Paragraphs of the readable text (at most 30,000 characters: Jira's description limit is 32,767).
            "paragraphs": TextLimit(30_000, .characters).truncate(mail.text).components(separatedBy: "\n\n").map {
                $0.trimmed
            }.filter { !$0.isEmpty }
                .map(TemplateText.init),
            "attachments": attachments,
            "inline_attachments": attachments.filter { $0["content_base64"] != nil },
            "attachment_count": message.attachments.count,
            "has_attachments": !message.attachments.isEmpty,
            "envelope": [
                "mail_from": TemplateText(input.envelope.mailFrom),
                "rcpt_to": input.envelope.rcptTo.map(TemplateText.init),
            ] as [String: Any],
            "recipients": mail.recipients.map(TemplateText.init),
            "tags": mail.tags.map(TemplateText.init),
            "headers": message.headers.map { ["name": TemplateText($0.name), "value": TemplateText($0.value)] },
            "payload": TemplateText(String(decoding: input.payloadJSON, as: UTF8.self)),
            "automated": message.automated,
        ]
        if let recipient = mail.recipients.first { context["recipient"] = TemplateText(recipient) }
        if let tag = mail.tags.first { context["tag"] = TemplateText(tag) }
        if let route = mail.route { context["route"] = TemplateText(route) }
        if let html = message.html { context["html"] = TemplateText(html) }
        if let id = message.messageID { context["message_id"] = TemplateText(id) }
        if let date = message.date { context["date"] = TemplateText(date) }
        return context
    }
}

/// A string value in a template, with lmtphook's helpers as transforms.
struct TemplateText: MustacheTransformable, CustomStringConvertible {
    let value: String
    init(_ value: String) { self.value = value }
    var description: String { value }

    func transform(_ name: String) -> Any? {
        switch name {
        case "json":
            var writer = JSONWriter()
            writer.string(value)
            return RawText(String(decoding: writer.bytes, as: UTF8.self))
        case "html": return TemplateText(ChatMarkup.html(value))
        case "htmllines": return TemplateText(ChatMarkup.html(value).replacingOccurrences(of: "\n", with: "<br>\n"))
        case "markdown": return TemplateText(ChatMarkup.markdown(value))
        case "lowercased": return TemplateText(value.lowercased())
        case "uppercased": return TemplateText(value.uppercased())
        case "empty": return value.isEmpty
        default:
            if name.hasPrefix("truncate"), let limit = Int(name.dropFirst("truncate".count)), limit > 0 {
                return TemplateText(TextLimit(limit, .characters).truncate(value))
            }
            return nil
        }
    }
}

/// Output that is already in its final form (e.g. a JSON literal).
struct RawText: CustomStringConvertible, MustacheCustomRenderable {
    let value: String
    init(_ value: String) { self.value = value }
    var description: String { value }
    var renderText: String { value }
    var isNull: Bool { false }
}

/// `{{value}}` in JSON templates: escaped for the inside of a JSON string literal.
struct JSONStringContentType: MustacheContentType {
    func escapeText(_ text: String) -> String {
        var writer = JSONWriter()
        writer.string(text)
        return String(decoding: writer.bytes.dropFirst().dropLast(), as: UTF8.self)
    }
}
