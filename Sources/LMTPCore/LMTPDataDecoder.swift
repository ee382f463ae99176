#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the text after `354` (RFC 5321 §4.1.1.4, §4.5.2): removes one leading dot from each line
/// and stops **only** at `CRLF . CRLF`. A line ends only at CRLF; bare LF and bare CR are content,
/// so every SMTP-smuggling variant (`LF.LF`, `LF.CRLF`, `CR.CRLF`, `CRLF.CRCRLF`, …) stays inside the
/// message. Bytes beyond `limit` are counted and discarded, never stored.
struct LMTPDataDecoder {
    let limit: Int
    /// The message so far (at most `limit` bytes).
    private(set) var content: [UInt8] = []
    /// Bytes of message after unstuffing, including those discarded beyond the limit.
    private(set) var size = 0
    private var atLineStart = true
    private var previousWasCR = false

    init(limit: Int) { self.limit = limit }

    /// `true` when more bytes arrived than the limit allows.
    var exceededLimit: Bool { size > limit }

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
            index = lineFeed + 1
            atLineStart = endedByCRLF
            previousWasCR = false
        }
        return false
    }

    private mutating func append(_ buffer: [UInt8], _ range: Range<Int>) {
        size += range.count
        if size <= limit {
            content.append(contentsOf: buffer[range])
        } else if !content.isEmpty {
            content = []  // over the limit: nothing of it will be delivered
        }
    }
}
