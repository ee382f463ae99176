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
    /// Encoded bytes not handed out yet, and the raw offset of the next chunk to encode.
    private var pending: [UInt8] = []
    private var pendingStart = 0
    private var rawOffset = 0
    private var rawChunk: UnsafeMutableRawBufferPointer?

    package init(_ body: RequestBody) { self.body = body }

    deinit { rawChunk?.deallocate() }

    /// Starts over from the first byte.
    package func rewind() {
        partIndex = 0
        partOffset = 0
        pending.removeAll(keepingCapacity: true)
        pendingStart = 0
        rawOffset = 0
    }

    /// Copies the next bytes into `buffer`; returns how many (0 at the end of the body).
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while partIndex < body.parts.count {
            let written = try read(part: body.parts[partIndex], into: buffer)
            if written > 0 { return written }
            partIndex += 1
            partOffset = 0
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
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
            if pendingStart == pending.count {
                guard try refill(from: message) else { return 0 }
            }
            let count = min(buffer.count, pending.count - pendingStart)
            pending.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + pendingStart, byteCount: count)
            }
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
        pending.removeAll(keepingCapacity: true)
        pendingStart = 0
        guard rawOffset < message.count else { return false }
        switch message {
        case .bytes(let bytes):
            let end = min(bytes.count, rawOffset + Self.rawChunkSize)
            bytes.withUnsafeBytes {
                Base64.encode(UnsafeRawBufferPointer(rebasing: $0[rawOffset..<end]), into: &pending)
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
            Base64.encode(UnsafeRawBufferPointer(rebasing: chunk[..<wanted]), into: &pending)
            rawOffset += wanted
        }
        return true
    }

    /// Raw bytes encoded at a time (a multiple of 3).
    static let rawChunkSize = 3 * 64 * 1024
}

/// Standard base64 (RFC 4648 §4) with padding, no line breaks.
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Appends the encoding of `input` to `output`.
    package static func encode(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        let start = output.count
        let length = (input.count + 2) / 3 * 4
        output.append(contentsOf: repeatElement(0, count: length))
        output.withUnsafeMutableBufferPointer { out in
            alphabet.withUnsafeBufferPointer { table in
                var source = 0
                var target = start
                while source + 3 <= input.count {
                    let value = UInt32(input[source]) << 16 | UInt32(input[source + 1]) << 8 | UInt32(input[source + 2])
                    out[target] = table[Int(value >> 18 & 63)]
                    out[target + 1] = table[Int(value >> 12 & 63)]
                    out[target + 2] = table[Int(value >> 6 & 63)]
                    out[target + 3] = table[Int(value & 63)]
                    source += 3
                    target += 4
                }
                let rest = input.count - source
                if rest > 0 {
                    let value = UInt32(input[source]) << 16 | (rest == 2 ? UInt32(input[source + 1]) << 8 : 0)
                    out[target] = table[Int(value >> 18 & 63)]
                    out[target + 1] = table[Int(value >> 12 & 63)]
                    out[target + 2] = rest == 2 ? table[Int(value >> 6 & 63)] : UInt8(ascii: "=")
                    out[target + 3] = UInt8(ascii: "=")
                }
            }
        }
    }
}
