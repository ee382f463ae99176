/// A message's bytes: in memory, or in a file when it was too big to keep in memory while it
/// arrived. Passed between the server, the parser, the spool and the webhook client as a handle:
/// a file body is never read whole except where something needs all of it at once (the parser).
package enum MessageBody: Sendable {
    case bytes([UInt8])
    case file(MessageFile)

    /// The size in bytes.
    package var count: Int {
        switch self {
        case .bytes(let bytes): bytes.count
        case .file(let file): file.size
        }
    }

    /// `true` for a body held in a file.
    package var isFile: Bool {
        if case .file = self { return true }
        return false
    }

    /// Calls `body` with the contents in order (one call for bytes, chunks for a file). Blocking
    /// for a file.
    package func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch self {
        case .bytes(let bytes): try bytes.withUnsafeBytes { try body($0) }
        case .file(let file): try file.forEachChunk(body)
        }
    }

    /// All the bytes in memory (reads a file body whole; blocking).
    package func contents() throws(MessageFileError) -> [UInt8] {
        switch self {
        case .bytes(let bytes): bytes
        case .file(let file): try file.readAll()
        }
    }
}
