#if canImport(Glibc)
import Glibc
#endif

/// The durable-names half of the spool's discipline for one directory: after a rename into or an
/// unlink from it, ``commit()`` returns once an `fsync` of the directory that started after the
/// change has finished. Concurrent callers share one sync (``GroupCommit``).
final class DirectorySync: Sendable {
    private let descriptor: Int32
    private let groupCommit: GroupCommit

    init(path: String, faults: SpoolFaultInjection?) throws(SpoolError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SpoolError(.unavailable, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        descriptor = fd
        groupCommit = GroupCommit {
            () throws(SpoolError) in
            if let code = faults?.check(.directorySync) {
                throw SpoolError(.write, "fsync of \(path) failed: \(String(cString: strerror(code))) (injected)")
            }
            // EINVAL: the file system cannot sync directories (Exim tolerates it too).
            if fsync(fd) != 0 && errno != EINVAL {
                throw SpoolError(.write, "fsync of \(path) failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    deinit { close(descriptor) }

    /// Returns once the directory's current names are durable.
    func commit() throws(SpoolError) { try groupCommit.commit() }
}
