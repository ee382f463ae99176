import Synchronization

/// A fault-injection hook in the spool's I/O layer: makes chosen operations fail with a chosen
/// `errno` until cleared, so tests can prove the replies under failing disks (fsync returning EIO,
/// a full or read-only file system, unreadable entries) and the recovery once the fault clears.
/// Production spools have none; every check is then a `nil` test.
package final class SpoolFaultInjection: Sendable {
    /// The spool I/O calls that can be made to fail.
    package enum Operation: String, Sendable, CaseIterable {
        /// open(O_CREAT) of a new entry file
        case create
        /// write(2) of entry bytes
        case write
        /// fsync(2) of an entry file
        case fsync
        /// rename(2) of an entry into the queue
        case rename
        /// fsync(2) of the queue directory
        case directorySync
        /// reading an entry back (retries, replay)
        case read
        /// open(2) of an entry to claim it
        case open
    }

    private let faults = Mutex<[Operation: Int32]>([:])
    private let hits = Mutex<[Operation: Int]>([:])

    package init() {}

    /// From now on `operation` fails with `errno` (e.g. `EIO`, `ENOSPC`, `EROFS`).
    package func fail(_ operation: Operation, errno: Int32) { faults.withLock { $0[operation] = errno } }

    /// Every operation works again.
    package func clear() { faults.withLock { $0.removeAll() } }

    /// How often an injected fault was hit.
    package func hitCount(_ operation: Operation) -> Int { hits.withLock { $0[operation, default: 0] } }

    /// The errno to fail `operation` with, if a fault is set (and counts the hit).
    func check(_ operation: Operation) -> Int32? {
        guard let code = faults.withLock({ $0[operation] }) else { return nil }
        hits.withLock { $0[operation, default: 0] += 1 }
        return code
    }
}
