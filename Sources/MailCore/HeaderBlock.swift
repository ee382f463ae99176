/// The header section of an RFC 5322 message: fields in order, duplicates kept, unfolded, values
/// as raw bytes. Tolerates LF-only and mixed line ends, a UTF-8 byte order mark, a leading mbox
/// `From ` line and white space before the colon (obs-fields). A line that is neither a field nor a
/// continuation ends the header section, as in Postfix and Python's `email` (the rest is body).
package struct HeaderBlock: Sendable, Hashable {
    /// One header field: the name as sent and the unfolded value with surrounding white space trimmed.
    package struct Field: Sendable, Hashable {
        package var name: String
        package var value: [UInt8]

        package init(name: String, value: [UInt8]) {
            self.name = name
            self.value = value
        }

        /// The value as UTF-8, invalid bytes replaced by U+FFFD.
        package var text: String { String(decoding: value, as: UTF8.self) }

        /// The value as text: UTF-8 (RFC 6532) or, failing that, windows-1252 (reported as a problem).
        package func rawText(problems: inout [String]) -> String {
            if value.allSatisfy({ $0 < 0x80 }) { return String(decoding: value, as: UTF8.self) }
            let decoded = Charset.utf8OrWindows1252(value[...])
            if String(validating: value, as: UTF8.self) == nil {
                problems.append("unencoded 8-bit bytes in header \(name)")
            }
            return decoded.text
        }

        /// The value with RFC 2047 encoded-words decoded (for unstructured fields such as Subject).
        package func decodedText(problems: inout [String]) -> String {
            EncodedWords.decode(rawText(problems: &problems), problems: &problems)
        }
    }

    /// At most this many fields are kept; the rest are dropped and reported.
    package static let maximumFields = 10_000

    package private(set) var fields: [Field] = []
    /// Byte offset (in the parsed range's indices) where the body starts.
    package private(set) var bodyOffset: Int
    /// What was wrong with the header section.
    package private(set) var problems: [String] = []

    package init(parsing message: [UInt8]) { self.init(parsing: message[...]) }

    package init(parsing message: ArraySlice<UInt8>) {
        var index = message.startIndex
        let end = message.endIndex
        bodyOffset = end
        if message.starts(with: [0xEF, 0xBB, 0xBF]) { index += 3 }
        var current: (name: String, value: [UInt8])? = nil
        var firstLine = true
        var fields: [Field] = []
        var problems: [String] = []
        func flush() {
            guard let pending = current else { return }
            current = nil
            if fields.count < Self.maximumFields {
                fields.append(Field(name: pending.name, value: Self.trim(pending.value)))
            } else if fields.count == Self.maximumFields {
                problems.append("more than \(Self.maximumFields) header fields; the rest were dropped")
            }
        }
        while index < end {
            var lineEnd = index
            message.withUnsafeBufferPointer { buffer in
                let base = message.startIndex
                var position = lineEnd - base
                while position < buffer.count && buffer[position] != 0x0A { position += 1 }
                lineEnd = position + base
            }
            var contentEnd = lineEnd
            if contentEnd > index && message[contentEnd - 1] == 0x0D { contentEnd -= 1 }
            let next = min(lineEnd + 1, end)
            let line = message[index..<contentEnd]
            let wasFirst = firstLine
            firstLine = false
            if line.isEmpty {
                flush()
                bodyOffset = next
                self.fields = fields
                self.problems = problems
                return
            }
            if line.first == 0x20 || line.first == 0x09 {
                if current != nil {
                    current!.value.append(contentsOf: line)  // unfolding removes only the line break
                } else if !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) || !wasFirst {
                    problems.append("continuation line without a header field")
                }
                index = next
                continue
            }
            if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
                var nameEnd = colon
                while nameEnd > line.startIndex && (message[nameEnd - 1] == 0x20 || message[nameEnd - 1] == 0x09) {
                    nameEnd -= 1
                }
                let name = line[line.startIndex..<nameEnd]
                if !name.isEmpty && name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                    flush()
                    current = (String(decoding: name, as: UTF8.self), Array(line[(colon + 1)...]))
                    index = next
                    continue
                }
            }
            if wasFirst && line.starts(with: Array("From ".utf8)) {
                index = next  // an mbox separator line, not a header
                continue
            }
            // Neither a field nor a continuation: the header section ends here, this line is body.
            flush()
            problems.append("missing empty line between header and body")
            bodyOffset = index
            self.fields = fields
            self.problems = problems
            return
        }
        flush()
        self.fields = fields
        self.problems = problems
    }

    /// The first field with this name (case-insensitive).
    package func first(_ name: String) -> Field? {
        fields.first { $0.name.utf8.count == name.utf8.count && $0.name.lowercased() == name.lowercased() }
    }

    /// Every field with this name (case-insensitive), in order.
    package func all(_ name: String) -> [Field] {
        let lowered = name.lowercased()
        return fields.filter { $0.name.lowercased() == lowered }
    }

    static func trim(_ bytes: [UInt8]) -> [UInt8] {
        var start = 0
        var end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 || bytes[start] == 0x0D || bytes[start] == 0x0A
        { start += 1 }
        while end > start,
            bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 || bytes[end - 1] == 0x0D || bytes[end - 1] == 0x0A
        { end -= 1 }
        return start == 0 && end == bytes.count ? bytes : Array(bytes[start..<end])
    }
}
