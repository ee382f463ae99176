#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A range of a message's bytes in a Content-Transfer-Encoding (an attachment's body as it sits
/// in the message): read decoded, a chunk at a time, without holding it whole.
package struct EncodedContent: Sendable {
    /// The whole message.
    package var body: MessageBody
    /// The encoded bytes' range in it.
    package var range: Range<Int>
    package var encoding: TransferEncoding
    /// The decoded length (the parser counted it while hashing the content; decoding again gives
    /// the same bytes).
    package var decodedCount: Int

    package init(body: MessageBody, range: Range<Int>, encoding: TransferEncoding, decodedCount: Int) {
        self.body = body
        self.range = range
        self.encoding = encoding
        self.decodedCount = decodedCount
    }

    /// The decoded bytes in memory (reads a file; blocking).
    package func contents() throws -> [UInt8] { try RequestBody([.decoded(self)]).contents() }
}

/// An HTTP request body made of parts, some of which are read from a message file while the
/// request is sent (so a request that carries a 20 MB message does not hold it in memory).
package struct RequestBody: Sendable {
    /// One piece of the body.
    package enum Part: Sendable {
        /// Bytes as they are.
        case bytes([UInt8])
        /// A message's bytes, as they are.
        case message(MessageBody)
        /// A message's bytes in standard base64 with padding, without line breaks.
        case base64(MessageBody)
        /// Content of a part of a message (an attachment), decoded.
        case decoded(EncodedContent)
        /// Content of a part of a message, decoded, in standard base64 without line breaks.
        case decodedBase64(EncodedContent)

        /// The bytes this part adds to the body.
        package var count: Int {
            switch self {
            case .bytes(let bytes): bytes.count
            case .message(let body): body.count
            case .base64(let body): Base64.encodedCount(body.count)
            case .decoded(let content): content.decodedCount
            case .decodedBase64(let content): Base64.encodedCount(content.decodedCount)
            }
        }

        /// Whether the part is read from a file while it is sent.
        var isFile: Bool {
            switch self {
            case .bytes: false
            case .message(let body), .base64(let body): body.isFile
            case .decoded(let content), .decodedBase64(let content): content.body.isFile
            }
        }
    }

    package var parts: [Part]

    package init(_ parts: [Part]) { self.parts = parts }

    package init(bytes: [UInt8]) { self.parts = [.bytes(bytes)] }

    /// The body's length (the `Content-Length`).
    package var count: Int { parts.reduce(0) { $0 + $1.count } }

    /// The whole body when it is in memory already (one part of bytes, or none), else `nil`.
    package var inMemory: [UInt8]? {
        switch parts.count {
        case 0: return []
        case 1: if case .bytes(let bytes) = parts[0] { return bytes } else { return nil }
        default: return nil
        }
    }

    /// The bytes the body holds in memory (its parts that are not read from a file).
    package var inMemoryCount: Int {
        parts.reduce(0) { total, part in
            switch part {
            case .bytes(let bytes): total + bytes.count
            case .message(let body), .base64(let body): body.isFile ? total : total + body.count
            case .decoded(let content), .decodedBase64(let content):
                content.body.isFile ? total : total + content.range.count
            }
        }
    }

    /// Whether any part is read from a file while the body is sent.
    package var isStreamed: Bool { parts.contains(where: \.isFile) }

    /// Calls `body` with the body's bytes in order, in chunks (for signing). Blocking.
    package func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let reader = RequestBodyReader(self)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MessageFile.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try reader.read(into: buffer)
            if count == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// Whether `needle` occurs anywhere in the body (also across chunk boundaries; reads file
    /// parts, blocking). Used to pick a multipart boundary that the content does not contain.
    package func contains(_ needle: [UInt8]) throws -> Bool {
        guard !needle.isEmpty else { return true }
        struct Found: Error {}
        var window: [UInt8] = []
        do {
            try forEachChunk { chunk in
                window += chunk
                var index = 0
                while index + needle.count <= window.count {
                    if window[index] == needle[0] && window[index..<(index + needle.count)].elementsEqual(needle) {
                        throw Found()
                    }
                    index += 1
                }
                // Keep what a match across the next chunk boundary could start with.
                window.removeFirst(max(0, window.count - (needle.count - 1)))
            }
        } catch is Found {
            return true
        }
        return false
    }

    /// The whole body in memory (reads file parts; blocking). For tests and small bodies.
    package func contents() throws -> [UInt8] {
        if let bytes = inMemory { return bytes }
        var output: [UInt8] = []
        output.reserveCapacity(count)
        try forEachChunk { output.append(contentsOf: $0) }
        return output
    }
}

/// Reads a ``RequestBody`` front to back into the caller's buffers (libcurl's read callback):
/// base64 is encoded and attachments decoded on the fly from the file, a chunk at a time. Not
/// thread-safe: one reader per transfer. ``rewind()`` starts over (curl rewinds when it resends
/// on a new connection). A part that yields a different length than it announced (the file
/// changed) fails the read, so the request fails instead of sending a wrong body.
package final class RequestBodyReader {
    private let body: RequestBody
    private var partIndex = 0
    private var stream: (any ByteStream)?
    /// Bytes of the current part handed out.
    private var produced = 0

    package init(_ body: RequestBody) { self.body = body }

    /// Starts over from the first byte.
    package func rewind() {
        partIndex = 0
        stream = nil
        produced = 0
    }

    /// Copies the next bytes into `buffer`; returns how many (0 at the end of the body).
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        while partIndex < body.parts.count {
            let part = body.parts[partIndex]
            if stream == nil { stream = Self.stream(for: part) }
            let expected = part.count
            let count = try stream!.read(into: buffer)
            if count > 0 {
                produced += count
                guard produced <= expected else { throw Self.lengthChanged(part, expected) }
                return count
            }
            guard produced == expected else { throw Self.lengthChanged(part, expected) }
            partIndex += 1
            stream = nil
            produced = 0
        }
        return 0
    }

    private static func lengthChanged(_ part: RequestBody.Part, _ expected: Int) -> MessageFileError {
        MessageFileError("a request body part did not have its announced length of \(expected) bytes", code: EIO)
    }

    private static func stream(for part: RequestBody.Part) -> any ByteStream {
        switch part {
        case .bytes(let bytes): BytesStream(bytes)
        case .message(let body): RangeStream(body, 0..<body.count)
        case .base64(let body): Base64EncodingStream(RangeStream(body, 0..<body.count))
        case .decoded(let content): decoding(content)
        case .decodedBase64(let content): Base64EncodingStream(decoding(content))
        }
    }

    private static func decoding(_ content: EncodedContent) -> any ByteStream {
        let raw = RangeStream(content.body, content.range)
        switch content.encoding {
        case .identity: return raw
        case .base64: return Base64DecodingStream(raw)
        case .quotedPrintable: return QuotedPrintableStream(raw)
        }
    }

    /// Raw bytes encoded at a time (a multiple of 3).
    static let rawChunkSize = 3 * 64 * 1024
}

/// Bytes handed out in order into the caller's buffers.
private protocol ByteStream: AnyObject {
    /// Copies the next bytes into `buffer` (not empty); 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

private final class BytesStream: ByteStream {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - offset)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: count)
        }
        offset += count
        return count
    }
}

/// A range of a message's bytes as they are.
private final class RangeStream: ByteStream {
    private let body: MessageBody
    private var offset: Int
    private let end: Int

    init(_ body: MessageBody, _ range: Range<Int>) {
        self.body = body
        self.offset = range.lowerBound
        self.end = min(range.upperBound, body.count)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let wanted = min(buffer.count, end - offset)
        guard wanted > 0 else { return 0 }
        let count: Int
        switch body {
        case .bytes(let bytes):
            bytes.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: wanted)
            }
            count = wanted
        case .file(let file):
            count = try file.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<wanted]))
            guard count > 0 else {
                throw MessageFileError("\(file.path) ended before its size of \(file.size) bytes", code: EIO)
            }
        }
        offset += count
        return count
    }
}

/// A stream's bytes written out by a transform, a chunk at a time.
private class TransformingStream: ByteStream {
    let source: any ByteStream
    private(set) var input: UnsafeMutableRawBufferPointer
    private(set) var output: UnsafeMutableRawBufferPointer
    private var pendingStart = 0
    private var pendingEnd = 0
    private var ended = false

    init(_ source: any ByteStream, inputSize: Int, outputSize: Int) {
        self.source = source
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: inputSize, alignment: 16)
        output = UnsafeMutableRawBufferPointer.allocate(byteCount: outputSize, alignment: 16)
    }

    deinit {
        input.deallocate()
        output.deallocate()
    }

    /// Fills `output` from the source; returns how many bytes, 0 at the end. Called again after
    /// it returned 0 only if `ended` is false.
    func refill() throws -> (count: Int, ended: Bool) { fatalError("subclass") }

    /// Reads from the source until `input[..<wanted]` is full or the source ends.
    func fill(_ wanted: Int) throws -> Int {
        var filled = 0
        while filled < wanted {
            let count = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: input[filled..<wanted]))
            if count == 0 { break }
            filled += count
        }
        return filled
    }

    final func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while pendingStart == pendingEnd {
            if ended { return 0 }
            let (count, end) = try refill()
            pendingStart = 0
            pendingEnd = count
            ended = end
        }
        let count = min(buffer.count, pendingEnd - pendingStart)
        buffer.baseAddress!.copyMemory(from: output.baseAddress! + pendingStart, byteCount: count)
        pendingStart += count
        return count
    }
}

/// Standard base64 of a stream (chunks of a multiple of 3 bytes: no padding mid-stream).
private final class Base64EncodingStream: TransformingStream {
    init(_ source: any ByteStream) {
        super.init(
            source,
            inputSize: RequestBodyReader.rawChunkSize,
            outputSize: Base64.encodedCount(RequestBodyReader.rawChunkSize)
        )
    }

    override func refill() throws -> (count: Int, ended: Bool) {
        let filled = try fill(input.count)
        let count = Base64.encode(UnsafeRawBufferPointer(rebasing: input[..<filled]), into: output)
        return (count, filled < input.count)
    }
}

/// A base64 body decoded (as the parser decodes it).
private final class Base64DecodingStream: TransformingStream {
    private var decoder = Base64Decoder()

    init(_ source: any ByteStream) {
        let size = 64 * 1024
        super.init(source, inputSize: size, outputSize: Base64Decoder.maximumOutput(size))
    }

    override func refill() throws -> (count: Int, ended: Bool) {
        let filled = try fill(input.count)
        var count = decoder.decode(UnsafeRawBufferPointer(rebasing: input[..<filled]), into: output)
        guard filled < input.count else { return (count, false) }
        count += decoder.finish(into: UnsafeMutableRawBufferPointer(rebasing: output[count...]))
        return (count, true)
    }
}

/// A quoted-printable body decoded (as the parser decodes it): whole lines at a time, since the
/// decoding of a line depends only on that line.
private final class QuotedPrintableStream: ByteStream {
    private let source: any ByteStream
    private var carry: [UInt8] = []
    private var decoded: [UInt8] = []
    private var offset = 0
    private var ended = false
    private static let chunkSize = 64 * 1024

    init(_ source: any ByteStream) { self.source = source }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while offset == decoded.count {
            if ended { return 0 }
            try refill()
        }
        let count = min(buffer.count, decoded.count - offset)
        decoded.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: count)
        }
        offset += count
        return count
    }

    /// Decodes the next whole lines (or the rest, at the end of the source).
    private func refill() throws {
        let start = carry.count
        carry.append(contentsOf: repeatElement(0, count: Self.chunkSize))
        let count = try carry.withUnsafeMutableBytes {
            try source.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[start...]))
        }
        carry.removeSubrange((start + count)...)
        offset = 0
        if count == 0 {
            ended = true
            decoded = TransferDecoding.quotedPrintable(carry[...])
            carry = []
            return
        }
        guard let lastLineEnd = carry.lastIndex(of: 0x0A) else {
            decoded = []
            return
        }
        decoded = TransferDecoding.quotedPrintable(carry[...lastLineEnd])
        carry.removeSubrange(...lastLineEnd)
    }
}

/// Standard base64 (RFC 4648 §4) with padding, no line breaks.
package enum Base64 {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8
    )

    /// The length of the encoding of `count` bytes.
    package static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the encoding of `input` to `output`.
    package static func encode(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        let encoded = [UInt8](unsafeUninitializedCapacity: encodedCount(input.count)) { buffer, count in
            count = encode(input, into: UnsafeMutableRawBufferPointer(buffer))
        }
        output.append(contentsOf: encoded)
    }

    /// Writes the encoding of `input` at the start of `output` (room for ``encodedCount(_:)``
    /// bytes); returns how many bytes were written.
    @discardableResult
    package static func encode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int {
        let length = encodedCount(input.count)
        precondition(output.count >= length, "base64 output buffer too small")
        guard length > 0, let source = input.baseAddress, let target = output.baseAddress else { return 0 }
        let from = source.assumingMemoryBound(to: UInt8.self)
        let to = target.assumingMemoryBound(to: UInt8.self)
        alphabet.withUnsafeBufferPointer { table in
            let table = table.baseAddress!
            var read = 0
            var written = 0
            let whole = input.count - input.count % 3
            while read < whole {
                let value = UInt32(from[read]) << 16 | UInt32(from[read + 1]) << 8 | UInt32(from[read + 2])
                to[written] = table[Int(value >> 18 & 63)]
                to[written + 1] = table[Int(value >> 12 & 63)]
                to[written + 2] = table[Int(value >> 6 & 63)]
                to[written + 3] = table[Int(value & 63)]
                read += 3
                written += 4
            }
            let rest = input.count - whole
            if rest > 0 {
                let value = UInt32(from[read]) << 16 | (rest == 2 ? UInt32(from[read + 1]) << 8 : 0)
                to[written] = table[Int(value >> 18 & 63)]
                to[written + 1] = table[Int(value >> 12 & 63)]
                to[written + 2] = rest == 2 ? table[Int(value >> 6 & 63)] : UInt8(ascii: "=")
                to[written + 3] = UInt8(ascii: "=")
            }
        }
        return length
    }
}
