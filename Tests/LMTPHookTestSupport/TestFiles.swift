import Foundation
import NIOPosix
import Spool

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp (short, so UNIX socket paths fit), removed with its contents on `remove()`.
package struct TemporaryDirectory: Sendable {
    package let path: String

    package init(_ prefix: String = "lmtphook-test") {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    package func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Removes the directory and everything in it (system calls only: no child process, so it is
    /// fine on the cooperative pool and in a `defer`).
    package func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
package func unusedTCPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Runs a program to completion; returns its exit status and combined output.
@discardableResult
package func run(
    _ program: String,
    _ arguments: [String],
    environment: [String: String] = [:]
) -> (status: Int32, output: String) {
    var pipeFDs: [Int32] = [0, 0]
    pipe(&pipeFDs)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
    posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
    let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
    var env: [UnsafeMutablePointer<CChar>?] = []
    var inherited = environ
    while let entry = inherited.pointee {
        env.append(strdup(entry))
        inherited += 1
    }
    for (key, value) in environment { env.append(strdup("\(key)=\(value)")) }
    env.append(nil)
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, program, &actions, nil, argv, env)
    posix_spawn_file_actions_destroy(&actions)
    close(pipeFDs[1])
    for pointer in argv { free(pointer) }
    for pointer in env { free(pointer) }
    guard spawned == 0 else {
        close(pipeFDs[0])
        return (127, "cannot run \(program): \(String(cString: strerror(spawned)))")
    }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        output += chunk[..<count]
    }
    close(pipeFDs[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return (exitStatus, String(decoding: output, as: UTF8.self))
}

/// Reads a whole file; `nil` when it cannot be read.
package func readFile(_ path: String) -> [UInt8]? { FileContents.read(path: path) }

/// Writes a whole file (created or truncated).
package func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    precondition(fd >= 0, "cannot write \(path)")
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Threads for blocking test code — child processes, blocking clients, long CPU loops — so that
/// tests never block the cooperative pool (an in-process relay needs it to answer the very
/// command being waited for).
private let blockingThreads: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: 64)
    pool.start()
    return pool
}()

/// Runs blocking code on a thread of its own, off the cooperative pool.
package func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await blockingThreads.runIfActive(body)
}

/// ``run(_:_:environment:)`` on a blocking thread: for async tests.
package func runProcess(
    _ program: String,
    _ arguments: [String],
    environment: [String: String] = [:]
) async -> (
    status: Int32, output: String
) {
    (try? await blocking { run(program, arguments, environment: environment) }) ?? (127, "blocking thread pool stopped")
}
