/// The header section of an RFC 5322 message: fields in order, duplicates kept, unfolded, values
/// as raw bytes (charset decoding belongs to the caller). Tolerates LF-only line ends, a leading
/// mbox `From ` line and lines without a colon (skipped as defects).
public struct HeaderBlock: Sendable, Hashable {
    /// One header field: the name as sent and the unfolded value with surrounding white space trimmed.
    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: [UInt8]

        /// The value as UTF-8, invalid bytes replaced by U+FFFD.
        public var text: String { String(decoding: value, as: UTF8.self) }
    }

    public private(set) var fields: [Field] = []
    /// Byte offset where the body starts (after the empty line), or the message length when there is none.
    public private(set) var bodyOffset: Int

    public init(parsing message: [UInt8]) {
        var index = 0
        let end = message.count
        var current: (name: String, value: [UInt8])? = nil
        bodyOffset = end
        func flush(_ fields: inout [Field]) {
            if let pending = current {
                fields.append(Field(name: pending.name, value: Self.trim(pending.value)))
                current = nil
            }
        }
        var firstLine = true
        while index < end {
            var lineEnd = index
            while lineEnd < end && message[lineEnd] != 0x0A { lineEnd += 1 }
            var contentEnd = lineEnd
            if contentEnd > index && message[contentEnd - 1] == 0x0D { contentEnd -= 1 }
            let next = min(lineEnd + 1, end)
            let line = message[index..<contentEnd]
            defer { firstLine = false }
            if line.isEmpty {
                flush(&fields)
                bodyOffset = next
                return
            }
            if line.first == 0x20 || line.first == 0x09 {
                // Continuation: unfolding removes only the line break (RFC 5322 §2.2.3).
                current?.value.append(contentsOf: line)
            } else if let colon = line.firstIndex(of: UInt8(ascii: ":")),
                colon > line.startIndex,
                line[line.startIndex..<colon].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
            {
                flush(&fields)
                current = (String(decoding: line[line.startIndex..<colon], as: UTF8.self), Array(line[(colon + 1)...]))
            } else if firstLine && line.starts(with: Array("From ".utf8)) {
                // mbox separator line: not a header
            } else {
                flush(&fields)  // a defect line: skipped
            }
            index = next
        }
        flush(&fields)
    }

    /// The first field with this name (case-insensitive).
    public func first(_ name: String) -> Field? {
        let lowered = name.lowercased()
        return fields.first { $0.name.lowercased() == lowered }
    }

    private static func trim(_ bytes: [UInt8]) -> [UInt8] {
        var slice = bytes[...]
        while let first = slice.first, first == 0x20 || first == 0x09 || first == 0x0D || first == 0x0A { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 || last == 0x0D || last == 0x0A { slice = slice.dropLast() }
        return Array(slice)
    }
}
