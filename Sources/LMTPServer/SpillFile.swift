import NIOConcurrencyHelpers
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The temporary file holding the part of one message beyond the in-memory limit while it
/// arrives. All file I/O runs on a thread pool, never on the event loop. The file is unlinked
/// when the message has been read back or the transaction ended without one.
final class SpillFile: Sendable {
    /// Name prefix of spill files; leftovers with it are removed when a server starts.
    static let prefix = "lmtp-incoming-"
    private static let counter = NIOLockedValueBox(0)

    let path: String
    private let descriptor: Int32
    private let pool: NIOThreadPool

    private init(path: String, descriptor: Int32, pool: NIOThreadPool) {
        self.path = path
        self.descriptor = descriptor
        self.pool = pool
    }

    /// Creates a new, empty spill file (mode 0600) in `directory`. The name is unique across
    /// processes (random, not the PID, which a container's PID 1 reuses on every start), and the
    /// file is flock'd while it lives, which is how ``removeLeftovers(in:)`` tells it from a leftover.
    static func create(in directory: String, pool: NIOThreadPool) async throws -> SpillFile {
        let number = counter.withLockedValue { value -> Int in
            value += 1
            return value
        }
        let unique = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let path = "\(directory)/\(prefix)\(getpid())-\(unique)-\(number)"
        let descriptor = try await pool.runIfActive {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw LMTPServerError("cannot create \(path): \(String(cString: strerror(errno)))") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(path)
                throw LMTPServerError("cannot lock \(path): \(reason)")
            }
            return fd
        }
        return SpillFile(path: path, descriptor: descriptor, pool: pool)
    }

    /// Appends bytes (all of them, or throws).
    func append(_ bytes: [UInt8]) async throws {
        let fd = descriptor
        let path = path
        try await pool.runIfActive {
            try bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw LMTPServerError("cannot write \(path): \(String(cString: strerror(errno)))")
                    }
                    offset += written
                }
            }
        }
    }

    /// Reads the whole file back, followed by `tail`.
    func readAll(expecting count: Int, then tail: [UInt8]) async throws -> [UInt8] {
        let path = path
        return try await pool.runIfActive {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw LMTPServerError("cannot open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var bytes = [UInt8](repeating: 0, count: count + tail.count)
            var offset = 0
            try bytes.withUnsafeMutableBytes { raw in
                while offset < count {
                    let read = pread(fd, raw.baseAddress! + offset, count - offset, off_t(offset))
                    if read < 0 && errno == EINTR { continue }
                    guard read > 0 else {
                        throw LMTPServerError(
                            "cannot read \(path): \(read < 0 ? String(cString: strerror(errno)) : "short file")"
                        )
                    }
                    offset += read
                }
            }
            bytes.replaceSubrange(count..., with: tail)
            return bytes
        }
    }

    /// Closes and unlinks the file (off the event loop; errors are ignored: it is scratch space).
    func remove() async {
        let fd = descriptor
        let path = path
        _ = try? await pool.runIfActive {
            close(fd)
            unlink(path)
        }
    }

    /// Removes spill files a previous process left behind (it died mid-transaction; the MTA
    /// never got a reply for those messages and still has them). A file some live process holds
    /// (another server on the same directory, or this one) is flock'd and kept. Blocking: call
    /// off the loop.
    static func removeLeftovers(in directory: String) -> Int {
        guard let dir = opendir(directory) else { return 0 }
        defer { closedir(dir) }
        var removed = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix(prefix) else { continue }
            let path = "\(directory)/\(name)"
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { continue }
            let held = flock(fd, LOCK_EX | LOCK_NB) != 0
            if !held && unlink(path) == 0 { removed += 1 }
            close(fd)
        }
        return removed
    }
}
