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

        /// The bytes this part adds to the body.
        package var count: Int {
            switch self {
            case .bytes(let bytes): bytes.count
            case .message(let body): body.count
            case .base64(let body): (body.count + 2) / 3 * 4
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
            case .message(let body), .base64(let body): body.isFile ? total : total + part.count
            }
        }
    }

    /// Whether any part is read from a file while the body is sent.
    package var isStreamed: Bool {
        parts.contains {
            switch $0 {
            case .bytes: false
            case .message(let body), .base64(let body): body.isFile
            }
        }
    }

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
/// base64 is encoded on the fly from the file, a chunk at a time. Not thread-safe: one reader
/// per transfer. ``rewind()`` starts over (curl rewinds when it resends on a new connection).
package final class RequestBodyReader {
    private let body: RequestBody
    private var partIndex = 0
    /// Bytes of the current part already handed out (for base64: of the encoded form).
    private var partOffset = 0
    /// Encoded bytes not handed out yet (`pendingStart..<pendingEnd` of `encoded`), and the raw
    /// offset of the next chunk to encode.
    private var pendingStart = 0
    private var pendingEnd = 0
    private var rawOffset = 0
    private var rawChunk: UnsafeMutableRawBufferPointer?
    private var encoded: UnsafeMutableRawBufferPointer?

    package init(_ body: RequestBody) { self.body = body }

    deinit {
        rawChunk?.deallocate()
        encoded?.deallocate()
    }

    /// Starts over from the first byte.
    package func rewind() {
        partIndex = 0
        partOffset = 0
        pendingStart = 0
        pendingEnd = 0
        rawOffset = 0
    }

    /// Copies the next bytes into `buffer`; returns how many (0 at the end of the body).
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while partIndex < body.parts.count {
            let written = try read(part: body.parts[partIndex], into: buffer)
            if written > 0 { return written }
            partIndex += 1
            partOffset = 0
            pendingStart = 0
            pendingEnd = 0
            rawOffset = 0
        }
        return 0
    }

    private func read(part: RequestBody.Part, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        switch part {
        case .bytes(let bytes):
            return copy(bytes, into: buffer)
        case .message(.bytes(let bytes)):
            return copy(bytes, into: buffer)
        case .message(.file(let file)):
            guard partOffset < file.size else { return 0 }
            let count = try file.read(at: partOffset, into: buffer)
            partOffset += count
            return count
        case .base64(let message):
            if pendingStart == pendingEnd {
                guard try refill(from: message) else { return 0 }
            }
            let count = min(buffer.count, pendingEnd - pendingStart)
            buffer.baseAddress!.copyMemory(from: encoded!.baseAddress! + pendingStart, byteCount: count)
            pendingStart += count
            return count
        }
    }

    private func copy(_ bytes: [UInt8], into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(buffer.count, bytes.count - partOffset)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + partOffset, byteCount: count)
        }
        partOffset += count
        return count
    }

    /// Encodes the next chunk of the message (a multiple of 3 bytes except at the end).
    private func refill(from message: MessageBody) throws -> Bool {
        pendingStart = 0
        pendingEnd = 0
        guard rawOffset < message.count else { return false }
        if encoded == nil {
            encoded = UnsafeMutableRawBufferPointer.allocate(
                byteCount: Base64.encodedCount(Self.rawChunkSize),
                alignment: 16
            )
        }
        switch message {
        case .bytes(let bytes):
            let end = min(bytes.count, rawOffset + Self.rawChunkSize)
            pendingEnd = bytes.withUnsafeBytes {
                Base64.encode(UnsafeRawBufferPointer(rebasing: $0[rawOffset..<end]), into: encoded!)
            }
            rawOffset = end
        case .file(let file):
            if rawChunk == nil {
                rawChunk = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.rawChunkSize, alignment: 16)
            }
            let chunk = rawChunk!
            // Fill the chunk completely (or to the end): base64 of a chunk must not pad mid-stream.
            let wanted = min(chunk.count, file.size - rawOffset)
            var filled = 0
            while filled < wanted {
                filled += try file.read(
                    at: rawOffset + filled,
                    into: UnsafeMutableRawBufferPointer(rebasing: chunk[filled..<wanted])
                )
            }
            pendingEnd = Base64.encode(UnsafeRawBufferPointer(rebasing: chunk[..<wanted]), into: encoded!)
            rawOffset += wanted
        }
        return true
    }

    /// Raw bytes encoded at a time (a multiple of 3).
    static let rawChunkSize = 3 * 64 * 1024
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
