import Crypto
import MessageData

/// An attachment (any part that is not a displayed text or HTML body).
package struct MailAttachment: Sendable, Hashable {
    /// RFC 2231/2047-decoded file name without directories or control characters, or `nil`.
    package var filename: String?
    /// Lower-cased media type, e.g. `application/pdf`.
    package var contentType: String
    /// Size after transfer decoding, in bytes.
    package var size: Int
    /// `attachment`, `inline`, or `nil` when the part had no Content-Disposition.
    package var disposition: String?
    /// The Content-ID without angle brackets (what `cid:` URLs refer to), or `nil`.
    package var contentID: String?
    /// Lower-case hex SHA-256 of the decoded content.
    package var sha256: String
    /// The decoded content, kept only when asked for and not larger than the limit.
    package var content: [UInt8]?
    /// Where the encoded content sits in the message, and its Content-Transfer-Encoding: the
    /// content can be read (decoded) from the message while a request is sent.
    package var encodedRange: Range<Int> = 0..<0
    package var transferEncoding: TransferEncoding = .identity

    /// The decoded content, read from the message `body` this attachment was parsed from.
    package func encodedContent(in body: MessageBody) -> EncodedContent {
        EncodedContent(body: body, range: encodedRange, encoding: transferEncoding, decodedCount: size)
    }
}

/// A message parsed for the payload: decoded headers, addresses, dates, ids, bodies, attachments.
/// Parsing never fails: what could not be understood is listed in `problems` and the raw bytes
/// stay available to the caller.
package struct ParsedMessage: Sendable {
    package var headers: [(name: String, value: String)] = []
    package var messageID: String?
    package var subject: String?
    package var date: String?
    package var dateRaw: String?
    package var from: [MailAddress] = []
    package var sender: MailAddress?
    package var replyTo: [MailAddress] = []
    package var to: [MailAddress] = []
    package var cc: [MailAddress] = []
    package var inReplyTo: [String] = []
    package var references: [String] = []
    package var text: String?
    package var html: String?
    package var attachments: [MailAttachment] = []
    /// Auto-Submitted ≠ no, Precedence bulk/list/junk, List-Id/List-Unsubscribe, X-Autoreply, multipart/report.
    /// (The null envelope sender is added by the payload, which knows the envelope.)
    package var automated = false
    /// `Authentication-Results` values as sent, top first.
    package var authenticationResults: [String] = []
    package var problems: [String] = []

    /// Parses raw message bytes. `inlineAttachmentLimit`: keep attachment contents up to this size
    /// (`nil`: keep none).
    package init(parsing raw: [UInt8], inlineAttachmentLimit: Int? = nil) {
        var parser = MIMEParser(message: raw)
        let root = parser.parse()
        var problems = parser.problems

        for field in root.headers.fields {
            headers.append((field.name, field.decodedText(problems: &problems)))
        }
        let top = root.headers
        func headerText(_ name: String) -> String? { top.first(name).map { $0.rawText(problems: &problems) } }
        subject = top.first("Subject").map { $0.decodedText(problems: &problems) }
        if let value = headerText("Message-ID") {
            messageID = MessageIDList.parse(value).first ?? (value.isEmpty ? nil : value)
        }
        if let value = headerText("Date") {
            dateRaw = value
            date = MailDate.rfc3339(value)
            if date == nil { problems.append("unparseable Date: \(value.prefix(80))") }
        }
        let fromFields = top.all("From")
        if fromFields.count > 1 { problems.append("\(fromFields.count) From header fields; the first is used") }
        from = fromFields.first.map { AddressList.parse($0.rawText(problems: &problems), problems: &problems) } ?? []
        sender = headerText("Sender").flatMap { AddressList.parse($0, problems: &problems).first }
        replyTo = top.all("Reply-To").flatMap {
            AddressList.parse($0.rawText(problems: &problems), problems: &problems)
        }
        to = top.all("To").flatMap { AddressList.parse($0.rawText(problems: &problems), problems: &problems) }
        cc = top.all("Cc").flatMap { AddressList.parse($0.rawText(problems: &problems), problems: &problems) }
        inReplyTo = headerText("In-Reply-To").map(MessageIDList.parse) ?? []
        references = top.all("References").flatMap { MessageIDList.parse($0.rawText(problems: &problems)) }
        authenticationResults = top.all("Authentication-Results").map { $0.rawText(problems: &problems) }

        let autoSubmitted = headerText("Auto-Submitted")?.lowercased().trimmingWhitespace()
        let precedence = headerText("Precedence")?.lowercased().trimmingWhitespace() ?? ""
        automated =
            (autoSubmitted.map { !$0.isEmpty && !$0.hasPrefix("no") } ?? false)
            || ["bulk", "list", "junk"].contains(precedence)
            || top.first("List-Id") != nil || top.first("List-Unsubscribe") != nil
            || top.first("X-Autoreply") != nil || top.first("X-Autorespond") != nil
            || root.mediaType == "multipart/report"

        // Body selection: RFC 8621 §4.1.4 (JMAP parseStructure).
        let textBody = PartList()
        let htmlBody = PartList()
        var leaves: [MIMEPart] = []
        Self.collectLeaves(root, into: &leaves)
        Self.parseStructure(
            [root],
            multipartType: "mixed",
            inAlternative: false,
            htmlBody: htmlBody,
            textBody: textBody
        )

        var texts: [String] = []
        var bodyRanges = Set<Range<Int>>()
        for part in textBody.parts where part.mediaType == "text/plain" || part.mediaType == "text/html" {
            bodyRanges.insert(part.body)
            let content = Self.decodeText(part, parser: parser, problems: &problems)
            texts.append(part.mediaType == "text/html" ? HTMLText.text(fromHTML: content) : content)
        }
        var htmls: [String] = []
        for part in htmlBody.parts where part.mediaType == "text/html" {
            bodyRanges.insert(part.body)
            htmls.append(Self.decodeText(part, parser: parser, problems: &problems))
        }
        for part in htmlBody.parts where part.mediaType == "text/plain" { bodyRanges.insert(part.body) }
        bodyRanges.formUnion(textBody.replaced)
        bodyRanges.formUnion(htmlBody.replaced)
        text = texts.isEmpty ? nil : texts.joined(separator: "\n")
        html = htmls.isEmpty ? nil : htmls.joined(separator: "\n")

        for leaf in leaves where !bodyRanges.contains(leaf.body) {
            var leafProblems: [String] = []
            // Hashed as it is decoded; the content is decoded whole only when it is kept.
            let (size, digest) = parser.decodedDigest(of: leaf, problems: &leafProblems)
            var content: [UInt8]? = nil
            if let limit = inlineAttachmentLimit, size <= limit {
                var ignored: [String] = []
                content = parser.decodedBody(of: leaf, problems: &ignored)
            }
            problems += leafProblems
            var contentID = leaf.headers.first("Content-ID")?.text.trimmingWhitespace()
            if let id = contentID, id.hasPrefix("<"), id.hasSuffix(">") {
                contentID = String(id.dropFirst().dropLast())
            }
            attachments.append(
                MailAttachment(
                    filename: Self.sanitize(filename: leaf.filename),
                    contentType: leaf.mediaType,
                    size: size,
                    disposition: leaf.disposition?.value.isEmpty == false ? leaf.disposition?.value : nil,
                    contentID: contentID?.isEmpty == false ? contentID : nil,
                    sha256: digest,
                    content: content,
                    encodedRange: leaf.body,
                    transferEncoding: TransferEncoding(leaf.transferEncoding)
                )
            )
        }
        var seen = Set<String>()
        self.problems = problems.filter { seen.insert($0).inserted }.prefix(100).map { $0 }
    }

    /// Roughly what this parsed message holds in memory, in bytes: its texts, headers and kept
    /// attachment contents (what a payload rendered from it holds again).
    package var memoryEstimate: Int {
        let headerBytes = headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        let kept = attachments.reduce(0) { $0 + ($1.content?.count ?? 0) * 4 / 3 }
        return (text?.utf8.count ?? 0) + (html?.utf8.count ?? 0) + headerBytes + kept
    }

    /// This message as an endpoint with `options` shows it: attachment contents kept only up
    /// to its inline limit, or no attachments at all. (A message is parsed once, with the
    /// largest limit of the endpoints it goes to.)
    package func shown(with options: PayloadOptions) -> ParsedMessage {
        var message = self
        switch options.attachments {
        case .omit:
            message.attachments = []
        case .metadata:
            for index in message.attachments.indices { message.attachments[index].content = nil }
        case .inline(let maxBytes):
            for index in message.attachments.indices where message.attachments[index].size > maxBytes {
                message.attachments[index].content = nil
            }
        }
        return message
    }

    private final class PartList {
        var parts: [MIMEPart] = []
        /// Alternatives that a later, more faithful alternative replaced: neither body nor attachment.
        var replaced: [Range<Int>] = []
    }

    private static func collectLeaves(_ part: MIMEPart, into leaves: inout [MIMEPart]) {
        if part.children.isEmpty {
            if !part.isMultipart { leaves.append(part) }
            return
        }
        for child in part.children { collectLeaves(child, into: &leaves) }
    }

    private static func isInlineMediaType(_ type: String) -> Bool {
        type.hasPrefix("image/") || type.hasPrefix("audio/") || type.hasPrefix("video/")
    }

    /// RFC 8621 §4.1.4, ported as written (textBody/htmlBody set to nil only within one call).
    private static func parseStructure(
        _ parts: [MIMEPart],
        multipartType: String,
        inAlternative: Bool,
        htmlBody: PartList?,
        textBody: PartList?
    ) {
        var htmlBody = htmlBody
        var textBody = textBody
        let textLength = textBody?.parts.count ?? -1
        let htmlLength = htmlBody?.parts.count ?? -1
        for (index, part) in parts.enumerated() {
            let type = part.mediaType
            let isInline =
                part.disposition?.value != "attachment"
                && (type == "text/plain" || type == "text/html" || isInlineMediaType(type))
                && (index == 0 || (multipartType != "related" && (isInlineMediaType(type) || part.filename == nil)))
            if part.isMultipart && !part.children.isEmpty {
                let subType = String(type.dropFirst("multipart/".count))
                parseStructure(
                    part.children,
                    multipartType: subType,
                    inAlternative: inAlternative || subType == "alternative",
                    htmlBody: htmlBody,
                    textBody: textBody
                )
            } else if isInline {
                if multipartType == "alternative" {
                    // The last alternative of a type is the most faithful (RFC 2046 §5.1.4): it replaces earlier ones.
                    if type == "text/plain", let textBody {
                        textBody.replaced += textBody.parts[max(0, textLength)...].map(\.body)
                        textBody.parts.removeSubrange(max(0, textLength)...)
                        textBody.parts.append(part)
                    } else if type == "text/html", let htmlBody {
                        htmlBody.replaced += htmlBody.parts[max(0, htmlLength)...].map(\.body)
                        htmlBody.parts.removeSubrange(max(0, htmlLength)...)
                        htmlBody.parts.append(part)
                    }
                    continue
                } else if inAlternative {
                    if type == "text/plain" { htmlBody = nil }
                    if type == "text/html" { textBody = nil }
                }
                textBody?.parts.append(part)
                htmlBody?.parts.append(part)
            }
        }
        if multipartType == "alternative", let textBody, let htmlBody {
            if textLength == textBody.parts.count && htmlLength != htmlBody.parts.count {
                textBody.parts += htmlBody.parts[htmlLength...]
            }
            if htmlLength == htmlBody.parts.count && textLength != textBody.parts.count {
                htmlBody.parts += textBody.parts[textLength...]
            }
        }
    }

    /// A text part's content as a string with `\n` line ends.
    private static func decodeText(_ part: MIMEPart, parser: MIMEParser, problems: inout [String]) -> String {
        let bytes = parser.decodedBody(of: part, problems: &problems)
        let decoded = Charset.decode(bytes, label: part.charset)
        if decoded.unknownCharset {
            problems.append(
                "unknown charset \(part.charset ?? "") in \(part.mediaType) part; read as UTF-8/windows-1252"
            )
        }
        if decoded.replacements > 0 {
            problems.append("\(decoded.replacements) undecodable byte(s) replaced in \(part.mediaType) part")
        }
        return normalizeLineEnds(decoded.text)
    }

    static func normalizeLineEnds(_ text: String) -> String {
        var text = text
        let hasCR = text.withUTF8 { utf8 in utf8.withMemoryRebound(to: UInt8.self) { $0.firstIndex(of: 0x0D) != nil } }
        guard hasCR else { return text }
        var output = [UInt8]()
        output.reserveCapacity(text.utf8.count)
        var previousCR = false
        for byte in text.utf8 {
            if byte == 0x0D {
                output.append(0x0A)
                previousCR = true
                continue
            }
            if byte == 0x0A && previousCR {
                previousCR = false
                continue
            }
            previousCR = false
            output.append(byte)
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The last path component, without control characters, at most 255 characters.
    static func sanitize(filename: String?) -> String? {
        guard let filename else { return nil }
        let base = filename.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let cleaned = String(base.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.map(Character.init))
            .trimmingWhitespace()
        if cleaned.isEmpty || cleaned == "." || cleaned == ".." { return nil }
        return String(cleaned.prefix(255))
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
