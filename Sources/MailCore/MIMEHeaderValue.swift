import MessageData

/// A `Content-Type` or `Content-Disposition` value: the main token and its parameters, with
/// RFC 2231 continuations and charsets (`filename*0*=utf-8''%E2%82%AC; filename*1="rate.pdf"`)
/// and the non-standard but common RFC 2047 words inside quoted values decoded.
package struct MIMEHeaderValue: Sendable, Hashable {
    /// The main token, lower-cased (`text/plain`, `attachment`).
    package var value: String
    /// Parameters by lower-cased name, decoded.
    package var parameters: [String: String]

    package init(value: String, parameters: [String: String] = [:]) {
        self.value = value
        self.parameters = parameters
    }

    /// Parses a header value given as text (after unfolding).
    package init(parsing text: String, problems: inout [String]) {
        let bytes = Array(text.utf8)
        var index = 0
        func skipSpace() {
            while index < bytes.count,
                bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0D || bytes[index] == 0x0A
            { index += 1 }
        }
        skipSpace()
        let valueStart = index
        while index < bytes.count, bytes[index] != UInt8(ascii: ";") { index += 1 }
        // The token, lower-cased, without white space or a trailing comment.
        var main: [UInt8] = []
        for byte in bytes[valueStart..<index] {
            if byte == UInt8(ascii: "(") { break }
            if byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A { continue }
            main.append(byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte)
        }
        value = String(decoding: main, as: UTF8.self)

        // name → (section → (value, extended))
        var simple: [String: String] = [:]
        var sections: [String: [Int: (text: [UInt8], extended: Bool)]] = [:]
        while index < bytes.count {
            index += 1  // past ';'
            skipSpace()
            let nameStart = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "="), bytes[index] != UInt8(ascii: ";") {
                index += 1
            }
            var name = String(
                decoding: bytes[nameStart..<index].filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D && $0 != 0x0A }.map {
                    $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0
                },
                as: UTF8.self
            )
            guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else {
                if !name.isEmpty { problems.append("parameter without value: \(name)") }
                continue
            }
            index += 1
            skipSpace()
            var raw: [UInt8] = []
            if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                index += 1
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\"), index + 1 < bytes.count { index += 1 }
                    raw.append(bytes[index])
                    index += 1
                }
                if index < bytes.count { index += 1 } else { problems.append("unterminated quoted parameter \(name)") }
                while index < bytes.count, bytes[index] != UInt8(ascii: ";") { index += 1 }
            } else {
                let start = index
                while index < bytes.count, bytes[index] != UInt8(ascii: ";") { index += 1 }
                raw = Array(bytes[start..<index])
                while let last = raw.last, last == 0x20 || last == 0x09 { raw.removeLast() }
            }
            var extended = false
            if name.hasSuffix("*") {
                extended = true
                name.removeLast()
            }
            if let star = name.lastIndex(of: "*"), let section = Int(name[name.index(after: star)...]) {
                let base = String(name[..<star])
                sections[base, default: [:]][section] = (raw, extended)
            } else if extended {
                sections[name, default: [:]][0] = (raw, true)
            } else if simple[name] == nil {
                simple[name] = String(decoding: raw, as: UTF8.self)
            }
        }
        var parameters: [String: String] = [:]
        for (name, text) in simple {
            parameters[name] = EncodedWords.decode(text, problems: &problems)
        }
        for (name, parts) in sections {
            // RFC 2231: charset'language' prefix on the first (extended) section; %XX in extended ones.
            var charset: String? = nil
            var bytes: [UInt8] = []
            for section in parts.keys.sorted() {
                guard let part = parts[section] else { continue }
                var text = part.text[...]
                if part.extended {
                    if section == parts.keys.min(), let first = text.firstIndex(of: UInt8(ascii: "'")),
                        let second = text[(first + 1)...].firstIndex(of: UInt8(ascii: "'"))
                    {
                        charset = String(decoding: text[text.startIndex..<first], as: UTF8.self)
                        text = text[(second + 1)...]
                    }
                    bytes += Self.percentDecode(text)
                } else {
                    bytes += text
                }
            }
            let decoded = Charset.decode(bytes, label: charset?.isEmpty == false ? charset : nil)
            if decoded.unknownCharset { problems.append("unknown charset \(charset ?? "") in parameter \(name)") }
            parameters[name] = decoded.text  // an RFC 2231 value wins over a plain one of the same name
        }
        self.parameters = parameters
    }

    static func percentDecode(_ text: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(text.count)
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == UInt8(ascii: "%"), index + 2 < text.endIndex,
                let high = TransferDecoding.hexValue(text[index + 1]),
                let low = TransferDecoding.hexValue(text[index + 2])
            {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(text[index])
                index += 1
            }
        }
        return output
    }
}

extension String {
    /// The string without leading and trailing white space and line breaks.
    func trimmingWhitespace() -> String {
        var slice = self[...]
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}
