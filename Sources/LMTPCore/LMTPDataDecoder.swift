#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the text after `354` (RFC 5321 §4.1.1.4, §4.5.2): removes one leading dot from each line
/// and stops **only** at `CRLF . CRLF`. A line ends only at CRLF; bare LF and bare CR are content,
/// so every SMTP-smuggling variant (`LF.LF`, `LF.CRLF`, `CR.CRLF`, `CRLF.CRCRLF`, …) stays inside the
/// message. Bytes beyond `limit` are counted and discarded, never stored; so is everything once the
/// header section is larger than `headerBytes` or has more than `headerFields` fields.
struct LMTPDataDecoder {
    let limit: Int
    let headerBytes: Int
    let headerFields: Int
    /// The message so far (at most `limit` bytes), minus what ``takeContent()`` handed out.
    private(set) var content: [UInt8] = []
    /// Bytes of message after unstuffing, including those discarded beyond the limit.
    private(set) var size = 0
    private var atLineStart = true
    private var previousWasCR = false
    /// Header accounting: still in the header section, fields seen, bytes of the current line.
    private var inHeader = true
    private(set) var fieldCount = 0
    private var headerLineLength = 0
    /// Set when the header section broke a limit; the message is then discarded.
    private(set) var headerLimitExceeded = false

    init(limit: Int, headerBytes: Int = .max, headerFields: Int = .max) {
        self.limit = limit
        self.headerBytes = headerBytes
        self.headerFields = headerFields
    }

    /// `true` when more bytes arrived than the limit allows.
    var exceededLimit: Bool { size > limit }

    /// Hands out the bytes stored so far (the driver writes them to a file) and forgets them.
    mutating func takeContent() -> [UInt8] {
        defer { content = [] }
        return content
    }

    /// Consumes bytes from `buffer[index...]`; returns `true` once end-of-data was read, with
    /// `index` just past the terminating `.CRLF` (so the bytes after it stay for the next command).
    mutating func consume(_ buffer: [UInt8], index: inout Int) -> Bool {
        let end = buffer.count
        while index < end {
            if atLineStart {
                if buffer[index] == UInt8(ascii: ".") {
                    // ".\r\n" ends the data; need up to three bytes to decide.
                    if index + 1 == end { return false }
                    if buffer[index + 1] == UInt8(ascii: "\r") {
                        if index + 2 == end { return false }
                        if buffer[index + 2] == UInt8(ascii: "\n") {
                            index += 3
                            return true
                        }
                    }
                    index += 1  // a stuffed dot: drop it
                }
                atLineStart = false
                previousWasCR = false
                continue
            }
            let lineFeed: Int? = buffer.withUnsafeBufferPointer { pointer in
                guard let base = pointer.baseAddress,
                    let found = memchr(base + index, 0x0A, end - index)
                else { return nil }
                return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            }
            guard let lineFeed else {
                append(buffer, index..<end)
                previousWasCR = buffer[end - 1] == UInt8(ascii: "\r")
                index = end
                return false
            }
            let endedByCRLF = lineFeed > index ? buffer[lineFeed - 1] == UInt8(ascii: "\r") : previousWasCR
            append(buffer, index..<(lineFeed + 1))
            if inHeader { endHeaderLine(crlf: endedByCRLF) }
            index = lineFeed + 1
            atLineStart = endedByCRLF
            previousWasCR = false
        }
        return false
    }

    private mutating func append(_ buffer: [UInt8], _ range: Range<Int>) {
        size += range.count
        if inHeader {
            if headerLineLength == 0 && buffer[range.lowerBound] != UInt8(ascii: " ")
                && buffer[range.lowerBound] != UInt8(ascii: "\t")
                && buffer[range.lowerBound] != UInt8(ascii: "\r") && buffer[range.lowerBound] != UInt8(ascii: "\n")
            {
                fieldCount += 1
            }
            headerLineLength += range.count
            if (size > headerBytes || fieldCount > headerFields) && !headerLimitExceeded {
                headerLimitExceeded = true
                inHeader = false
                content = []
            }
        }
        if headerLimitExceeded { return }
        if size <= limit {
            content.append(contentsOf: buffer[range])
        } else if !content.isEmpty {
            content = []  // over the limit: nothing of it will be delivered
        }
    }

    /// A line of the header section ended: an empty line (CRLF, or a bare LF as the header
    /// parser also accepts) ends the section.
    private mutating func endHeaderLine(crlf: Bool) {
        if headerLineLength == 1 || (crlf && headerLineLength == 2) { inHeader = false }
        headerLineLength = 0
    }
}
