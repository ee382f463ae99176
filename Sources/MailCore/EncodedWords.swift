import MessageData

/// RFC 2047 encoded-words (`=?charset?B|Q?text?=`) in header text.
///
/// White space between adjacent encoded-words is dropped (§6.2); the decoded bytes of adjacent
/// words in the same charset are joined before charset decoding, because mailers split multi-byte
/// characters across words. Words that do not decode (unknown charset, bad base64) stay literal and
/// are reported. Encoded-words glued to other text are decoded too (common in the wild).
package enum EncodedWords {
    /// Decodes every encoded-word in `text`; `problems` receives a description of each word that
    /// could not be decoded cleanly.
    package static func decode(_ text: String, problems: inout [String]) -> String {
        var text = text
        let mayHaveWords = text.withUTF8 { utf8 in
            var index = utf8.startIndex
            while index + 1 < utf8.endIndex {
                if utf8[index] == UInt8(ascii: "=") && utf8[index + 1] == UInt8(ascii: "?") { return true }
                index += 1
            }
            return false
        }
        guard mayHaveWords else { return text }
        let bytes = Array(text.utf8)
        var pieces: [Piece] = []
        var literalStart = 0
        var index = 0
        var noWordBefore = 0  // a failed scan proved no encoded-word can end before this position
        while index + 1 < bytes.count {
            if index >= noWordBefore, bytes[index] == UInt8(ascii: "="), bytes[index + 1] == UInt8(ascii: "?"),
                let word = parseWord(bytes, at: index, noWordBefore: &noWordBefore)
            {
                if literalStart < index { pieces.append(.literal(Array(bytes[literalStart..<index]))) }
                pieces.append(
                    .word(
                        charset: word.charset,
                        bytes: word.bytes,
                        source: Array(bytes[index..<word.end]),
                        malformed: word.malformed
                    )
                )
                index = word.end
                literalStart = index
            } else {
                index += 1
            }
        }
        if literalStart < bytes.count { pieces.append(.literal(Array(bytes[literalStart...]))) }

        var output = ""
        // The run of adjacent encoded-words in one charset, grown in place (never re-copied).
        var pendingCharset: String? = nil
        var pendingBytes: [UInt8] = []
        var previousWasWord = false
        func flush() {
            guard let charset = pendingCharset else { return }
            pendingCharset = nil
            let decoded = Charset.decode(pendingBytes, label: charset)
            if decoded.unknownCharset {
                problems.append("unknown charset \(charset) in encoded-word; read as UTF-8/windows-1252")
            }
            if decoded.replacements > 0 {
                problems.append("\(decoded.replacements) undecodable byte(s) in \(charset) encoded-word")
            }
            output += decoded.text
            pendingBytes.removeAll(keepingCapacity: true)
        }
        for (position, piece) in pieces.enumerated() {
            switch piece {
            case .literal(let literal):
                // White space alone between two encoded-words disappears.
                let isBlank = literal.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }
                if isBlank && previousWasWord, position + 1 < pieces.count, case .word = pieces[position + 1] {
                    continue
                }
                flush()
                output += String(decoding: literal, as: UTF8.self)
                previousWasWord = false
            case .word(let charset, let wordBytes, let source, let malformed):
                if malformed {
                    problems.append("malformed encoded-word \(String(decoding: source.prefix(80), as: UTF8.self))")
                }
                if pendingCharset?.lowercased() != charset.lowercased() {
                    flush()
                    pendingCharset = charset
                }
                pendingBytes += wordBytes
                previousWasWord = true
            }
        }
        flush()
        return output
    }

    private enum Piece {
        case literal([UInt8])
        case word(charset: String, bytes: [UInt8], source: [UInt8], malformed: Bool)
    }

    /// Parses `=?charset?E?text?=` at `start`; the text may not contain `?` or white space.
    private static func parseWord(
        _ bytes: [UInt8],
        at start: Int,
        noWordBefore: inout Int
    ) -> (charset: String, bytes: [UInt8], end: Int, malformed: Bool)? {
        // Real encoded-words are short (RFC 2047 says 75, long ones exist); a failed scan of the
        // text moves `noWordBefore` so that no byte is scanned twice for the same reason.
        let limit = min(bytes.count, start + 4096)
        var index = start + 2
        let charsetStart = index
        while index < limit, bytes[index] != UInt8(ascii: "?") {
            if bytes[index] <= 0x20 || bytes[index] >= 0x7F { return nil }
            index += 1
        }
        guard index < limit, index > charsetStart, index + 2 < limit else { return nil }
        let charset = String(decoding: bytes[charsetStart..<index], as: UTF8.self)
        let encoding = bytes[index + 1] | 0x20
        guard encoding == UInt8(ascii: "b") || encoding == UInt8(ascii: "q"), bytes[index + 2] == UInt8(ascii: "?")
        else { return nil }
        index += 3
        let textStart = index
        while index + 1 < limit, !(bytes[index] == UInt8(ascii: "?") && bytes[index + 1] == UInt8(ascii: "=")) {
            if bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D {
                noWordBefore = index
                return nil
            }
            index += 1
        }
        guard index + 1 < limit else {
            noWordBefore = index
            return nil
        }
        let text = bytes[textStart..<index]
        var malformed = false
        let decoded: [UInt8]
        if encoding == UInt8(ascii: "b") {
            decoded = TransferDecoding.base64(text, malformed: &malformed)
        } else {
            decoded = qDecode(text)
        }
        return (charset, decoded, index + 2, malformed)
    }

    /// The "Q" encoding: `_` is a space, `=XX` a byte.
    static func qDecode(_ text: ArraySlice<UInt8>) -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity(text.count)
        var index = text.startIndex
        while index < text.endIndex {
            let byte = text[index]
            if byte == UInt8(ascii: "_") {
                output.append(0x20)
            } else if byte == UInt8(ascii: "="), index + 2 < text.endIndex,
                let high = TransferDecoding.hexValue(text[index + 1]),
                let low = TransferDecoding.hexValue(text[index + 2])
            {
                output.append(high << 4 | low)
                index += 3
                continue
            } else {
                output.append(byte)
            }
            index += 1
        }
        return output
    }

    /// Encodes text as UTF-8 "B" encoded-words (for tests and round trips), at most 75 characters each.
    package static func encode(_ text: String) -> String {
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 45 {
                words.append("=?UTF-8?B?\(base64Encode(chunk))?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?\(base64Encode(chunk))?=") }
        return words.joined(separator: " ")
    }

    /// Standard base64 with padding.
    package static func base64Encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        TransferDecoding.base64Encode(bytes, into: &output)
        return String(decoding: output, as: UTF8.self)
    }
}
