#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Prepares a UNIX socket path before binding: a stale socket file left by a dead process is
/// removed; a path where a live server answers, or that is not a socket, is refused.
enum UnixSocketPath {
    static func prepare(_ path: String) throws(LMTPServerError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }  // nothing there
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw LMTPServerError("\(path) exists and is not a socket; refusing to replace it")
        }
        if isAnswering(path) {
            throw LMTPServerError("another server is already listening on \(path)")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw LMTPServerError("cannot remove stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// `true` when something accepts connections on the socket at `path`.
    static func isAnswering(_ path: String) -> Bool {
        let fd = UnixDomainSocket.connect(path)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    static func setMode(_ path: String, _ mode: UInt32) throws(LMTPServerError) {
        guard chmod(path, mode_t(mode)) == 0 else {
            throw LMTPServerError(
                "cannot set mode \(String(mode, radix: 8)) on \(path): \(String(cString: strerror(errno)))"
            )
        }
    }

    static func remove(_ path: String) {
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
    }
}

/// Connecting to a UNIX-domain stream socket with plain POSIX calls (blocking).
public enum UnixDomainSocket {
    /// Connects to the socket at `path`; returns the descriptor, or -1 with `errno` set
    /// (`ENAMETOOLONG` when the path does not fit a `sockaddr_un`).
    public static func connect(_ path: String) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return -1 }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let saved = errno
            close(fd)
            errno = saved
            return -1
        }
        return fd
    }
}

extension UnixSocketPath {
    /// Gives the socket file to `owner` and/or `group` (names or numeric ids).
    static func setOwner(_ path: String, owner: String?, group: String?) throws(LMTPServerError) {
        guard owner != nil || group != nil else { return }
        var uid = uid_t.max  // (uid_t)-1: leave unchanged
        var gid = gid_t.max
        if let owner {
            if let number = uid_t(owner) {
                uid = number
            } else if let entry = getpwnam(owner) {
                uid = entry.pointee.pw_uid
            } else {
                throw LMTPServerError("socket owner '\(owner)' is not a user on this system")
            }
        }
        if let group {
            if let number = gid_t(group) {
                gid = number
            } else if let entry = getgrnam(group) {
                gid = entry.pointee.gr_gid
            } else {
                throw LMTPServerError("socket group '\(group)' is not a group on this system")
            }
        }
        guard chown(path, uid, gid) == 0 else {
            throw LMTPServerError(
                "cannot give \(path) to \(owner ?? "-"):\(group ?? "-"): \(String(cString: strerror(errno)))"
            )
        }
    }
}
