/// One mailbox from an address header: the decoded display name and the address.
package struct MailAddress: Sendable, Hashable {
    /// The display name (RFC 2047 decoded, quotes removed), or `nil`.
    package var name: String?
    /// `local@domain` with the domain lower-cased; may lack a domain in broken mail.
    package var address: String

    package init(name: String?, address: String) {
        self.name = name
        self.address = address
    }
}

/// Parses address lists (RFC 5322 §3.4, §4.4) the robust way: the list is tokenised first and
/// display names are decoded afterwards, so a decoded name containing a comma stays one name.
/// Handles quoted names, comments (nested), groups (members are flattened, `undisclosed-recipients:;`
/// gives nothing), source routes, empty elements, `mailto:` and real-world garbage like a missing
/// `<>` around an address after a name.
package enum AddressList {
    enum Token: Equatable {
        case atom(String)
        case quoted(String)
        case comment(String)
        case special(UInt8)
    }

    /// Parses `text` (the raw header value, encoded-words still encoded).
    package static func parse(_ text: String, problems: inout [String]) -> [MailAddress] {
        let tokens = tokenize(Array(text.utf8), problems: &problems)
        var result: [MailAddress] = []
        var element: [(token: Token, spaceBefore: Bool)] = []
        var angleDepth = 0
        var inGroup = false
        for entry in tokens {
            switch entry.token {
            case .special(UInt8(ascii: "<")):
                angleDepth += 1
                element.append(entry)
            case .special(UInt8(ascii: ">")):
                angleDepth = max(0, angleDepth - 1)
                element.append(entry)
            case .special(UInt8(ascii: ",")) where angleDepth == 0:
                flush()
            case .special(UInt8(ascii: ":"))
            where angleDepth == 0 && !inGroup && !element.contains(where: { $0.token == .special(UInt8(ascii: "@")) }):
                element = []  // group display name: members follow
                inGroup = true
            case .special(UInt8(ascii: ";")) where angleDepth == 0:
                flush()
                inGroup = false
            default:
                element.append(entry)
            }
        }
        flush()
        return result

        func flush() {
            defer { element = [] }
            guard !element.isEmpty else { return }
            if let address = mailbox(from: element, problems: &problems) { result.append(address) }
        }
    }

    private static func mailbox(
        from element: [(token: Token, spaceBefore: Bool)],
        problems: inout [String]
    ) -> MailAddress? {
        let comments = element.compactMap { entry -> String? in
            if case .comment(let text) = entry.token { return text }
            return nil
        }
        let words = element.filter {
            if case .comment = $0.token { return false }
            return true
        }
        if let open = words.firstIndex(where: { $0.token == .special(UInt8(ascii: "<")) }) {
            let close = words[open...].firstIndex(where: { $0.token == .special(UInt8(ascii: ">")) }) ?? words.endIndex
            if close == words.endIndex { problems.append("unterminated angle address") }
            var inner = Array(words[(open + 1)..<close])
            // Source route "@a,@b:" before the mailbox.
            if let colon = inner.firstIndex(where: { $0.token == .special(UInt8(ascii: ":")) }),
                inner.first?.token == .special(UInt8(ascii: "@"))
            {
                inner = Array(inner[(colon + 1)...])
            }
            let address = addressText(inner)
            var name = phrase(Array(words[..<open]), problems: &problems)
            if name == nil, let comment = comments.first { name = decodeName(comment, problems: &problems) }
            if address.isEmpty && name == nil { return nil }
            return MailAddress(name: name, address: address)
        }
        // No angle brackets: an addr-spec, perhaps after a bare name ("Joe joe@x"); a stray '>' is dropped.
        let bare = words.filter { $0.token != Token.special(UInt8(ascii: ">")) }
        guard !bare.isEmpty else { return nil }
        var addressStart = 0
        if let at = bare.lastIndex(where: { $0.token == .special(UInt8(ascii: "@")) }) {
            var start = at
            while start > 0 && !bare[start].spaceBefore { start -= 1 }
            addressStart = start
            if start > 0 { problems.append("address without angle brackets after a display name") }
        }
        let address = addressText(Array(bare[addressStart...]))
        var name = addressStart > 0 ? phrase(Array(bare[..<addressStart]), problems: &problems) : nil
        if name == nil, let comment = comments.first { name = decodeName(comment, problems: &problems) }
        if address.isEmpty { return nil }
        return MailAddress(name: name, address: address)
    }

    /// Joins the tokens of an addr-spec; the domain is lower-cased, a `mailto:` prefix dropped.
    private static func addressText(_ words: [(token: Token, spaceBefore: Bool)]) -> String {
        var text = ""
        for entry in words {
            switch entry.token {
            case .atom(let atom): text += atom
            case .quoted(let quoted):
                let needsQuotes =
                    quoted.isEmpty
                    || quoted.contains {
                        $0 == " " || $0 == "\"" || $0 == "\\" || $0 == "," || $0 == "@" || $0 == "(" || $0 == ")"
                            || $0 == "<" || $0 == ">" || $0 == ":" || $0 == ";"
                    }
                text +=
                    needsQuotes
                    ? "\"" + quoted.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\"" : quoted
            case .special(let byte): text += String(UnicodeScalar(byte))
            case .comment: break
            }
        }
        if text.lowercased().hasPrefix("mailto:") { text = String(text.dropFirst(7)) }
        if let at = text.lastIndex(of: "@") {
            text = String(text[...at]) + text[text.index(after: at)...].lowercased()
        }
        return text
    }

    /// A display-name phrase: words joined by single spaces, then RFC 2047 decoded.
    private static func phrase(_ words: [(token: Token, spaceBefore: Bool)], problems: inout [String]) -> String? {
        var parts: [String] = []
        var glue = false
        for entry in words {
            var piece: String
            switch entry.token {
            case .atom(let atom): piece = atom
            case .quoted(let quoted): piece = quoted
            case .special(let byte): piece = String(UnicodeScalar(byte))
            case .comment: continue
            }
            if glue && !entry.spaceBefore, let last = parts.popLast() { piece = last + piece }
            parts.append(piece)
            glue = true
        }
        let joined = parts.joined(separator: " ")
        return decodeName(joined, problems: &problems)
    }

    private static func decodeName(_ text: String, problems: inout [String]) -> String? {
        let decoded = EncodedWords.decode(text, problems: &problems).trimmingWhitespace()
        return decoded.isEmpty ? nil : decoded
    }

    static func tokenize(_ bytes: [UInt8], problems: inout [String]) -> [(token: Token, spaceBefore: Bool)] {
        var tokens: [(token: Token, spaceBefore: Bool)] = []
        var index = 0
        var space = false
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case 0x20, 0x09, 0x0D, 0x0A:
                space = true
                index += 1
                continue
            case UInt8(ascii: "\""):
                var content: [UInt8] = []
                var cursor = index + 1
                while cursor < bytes.count, bytes[cursor] != UInt8(ascii: "\"") {
                    if bytes[cursor] == UInt8(ascii: "\\"), cursor + 1 < bytes.count { cursor += 1 }
                    content.append(bytes[cursor])
                    cursor += 1
                }
                if cursor >= bytes.count {
                    // Unterminated: read the quote as an ordinary character and go on tokenising.
                    problems.append("unterminated quoted string in address")
                    tokens.append((.atom("\""), space))
                    index += 1
                    space = false
                    continue
                }
                index = cursor + 1
                tokens.append((.quoted(String(decoding: content, as: UTF8.self)), space))
            case UInt8(ascii: "("):
                var depth = 1
                var content: [UInt8] = []
                index += 1
                while index < bytes.count {
                    let current = bytes[index]
                    if current == UInt8(ascii: "\\"), index + 1 < bytes.count {
                        content.append(bytes[index + 1])
                        index += 2
                        continue
                    }
                    if current == UInt8(ascii: "(") { depth += 1 }
                    if current == UInt8(ascii: ")") {
                        depth -= 1
                        if depth == 0 { break }
                    }
                    content.append(current)
                    index += 1
                }
                if depth > 0 { problems.append("unterminated comment in address") }
                index += 1
                tokens.append((.comment(String(decoding: content, as: UTF8.self)), space))
            case UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: ";"),
                UInt8(ascii: "@"):
                tokens.append((.special(byte), space))
                index += 1
            default:
                let start = index
                while index < bytes.count {
                    let current = bytes[index]
                    if current == 0x20 || current == 0x09 || current == 0x0D || current == 0x0A
                        || current == UInt8(ascii: "\"") || current == UInt8(ascii: "(")
                        || current == UInt8(ascii: "<") || current == UInt8(ascii: ">") || current == UInt8(ascii: ",")
                        || current == UInt8(ascii: ":")
                        || current == UInt8(ascii: ";") || current == UInt8(ascii: "@")
                    {
                        break
                    }
                    index += 1
                }
                tokens.append((.atom(String(decoding: bytes[start..<index], as: UTF8.self)), space))
            }
            space = false
        }
        return tokens
    }
}
