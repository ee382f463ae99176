import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A message kept in a file: an open descriptor, so the file can be linked into the spool,
/// renamed or unlinked by its creator while it is still read. Immutable once handed over (nobody
/// writes to it again); reads use `pread`, so one `MessageFile` can be read from many threads.
/// All methods block: call them from a thread pool, never from an event loop or the cooperative pool.
package final class MessageFile: Sendable {
    /// The name the file had when it was opened (used for links and in messages).
    package let path: String
    /// The message's size in bytes.
    package let size: Int
    private let descriptor: Int32
    private let synced = Atomic<Bool>(false)

    /// Opens `path` for reading.
    package init(opening path: String) throws(MessageFileError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw MessageFileError("cannot open \(path): \(MessageFileError.lastError())", code: code)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = MessageFileError.lastError()
            close(fd)
            throw MessageFileError("cannot stat \(path): \(reason)")
        }
        self.path = path
        self.descriptor = fd
        self.size = Int(info.st_size)
    }

    deinit { close(descriptor) }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many (0 only at the end).
    package func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(MessageFileError) -> Int {
        guard offset < size, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let count = pread(descriptor, base, min(buffer.count, size - offset), off_t(offset))
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw MessageFileError("cannot read \(path): \(MessageFileError.lastError())") }
            guard count > 0 else { throw MessageFileError("cannot read \(path): shorter than \(size) bytes", code: 0) }
            return count
        }
    }

    /// Calls `body` with the file's contents in chunks of at most `chunkSize` bytes, in order.
    package func forEachChunk(
        chunkSize: Int = MessageFile.chunkSize,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, chunkSize), alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        while offset < size {
            let count = try read(at: offset, into: buffer)
            try body(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            offset += count
        }
    }

    /// The whole file in memory.
    package func readAll() throws(MessageFileError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        var failure: MessageFileError? = nil
        bytes.withUnsafeMutableBytes { raw in
            while offset < size {
                do throws(MessageFileError) {
                    offset += try read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: raw[offset...]))
                } catch {
                    failure = error
                    return
                }
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Makes the file's data durable (fsync), once: later calls return at once.
    package func sync() throws(MessageFileError) {
        guard !synced.load(ordering: .acquiring) else { return }
        while fsync(descriptor) != 0 {
            if errno == EINTR { continue }
            throw MessageFileError("fsync of \(path) failed: \(MessageFileError.lastError())")
        }
        synced.store(true, ordering: .releasing)
    }

    /// Gives the file another name (a hard link: no copy). Works after the original name was
    /// removed, through the open descriptor. Throws with `cannotLink` set when a link is not
    /// possible there (another file system, or one without hard links): the caller copies instead.
    package func link(to target: String) throws(MessageFileError) {
        if Glibc.link(path, target) == 0 { return }
        if errno == ENOENT {
            // The name is gone (its creator removed it); the descriptor still names the file.
            if linkat(AT_FDCWD, "/proc/self/fd/\(descriptor)", AT_FDCWD, target, AT_SYMLINK_FOLLOW) == 0 { return }
        }
        let code = errno
        throw MessageFileError(
            "cannot link \(path) to \(target): \(MessageFileError.lastError())",
            cannotLink: [EXDEV, EPERM, EMLINK, EOPNOTSUPP, ENOTSUP, ENOENT].contains(code),
            code: code
        )
    }

    /// The chunk size of sequential reads: big enough for few system calls, small enough to stay
    /// out of the way in memory.
    package static let chunkSize = 256 * 1024
}

/// Why a message file could not be read or linked; the message names the file.
package struct MessageFileError: Error, Sendable, CustomStringConvertible {
    package let description: String
    /// A link was not possible (another file system, or one without hard links).
    package let cannotLink: Bool
    /// The `errno` of the failed call (0 when there was none, e.g. a short file).
    package let code: Int32

    package init(_ description: String, cannotLink: Bool = false, code: Int32 = errno) {
        self.description = description
        self.cannotLink = cannotLink
        self.code = code
    }

    static func lastError() -> String { String(cString: strerror(errno)) }
}
