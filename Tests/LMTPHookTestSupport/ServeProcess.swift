import Foundation
import LMTPServer
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// The built `lmtphook` binary, as an operator runs it. `swift build` must have run first
/// (the README's test command does).
package enum Binary {
    package static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
    package static var path: String { packageRoot.appendingPathComponent(".build/debug/lmtphook").path }

    package static func require() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError(
                description: "\(path) not found: run `swift build` before `swift test` (the README's test command does)"
            )
        }
        return path
    }
}

/// What went wrong starting or driving a child process.
package struct HarnessError: Error, CustomStringConvertible {
    package let description: String
}

/// `lmtphook serve` as a child process: the one way tests run the daemon. Started until its UNIX
/// socket is there; restarted over a stale socket file (a killed process left it) until the socket
/// accepts a connection; fails loudly when the process exits first or neither happens within 20 s.
/// Everything that waits runs off the cooperative pool.
package final class ServeProcess: @unchecked Sendable {
    package let arguments: [String]
    package let socket: String
    private let logPath: String?
    private let lock = NIOLock()
    private var process: Process?

    private init(arguments: [String], socket: String, logPath: String?) {
        self.arguments = arguments
        self.socket = socket
        self.logPath = logPath
    }

    /// Starts `lmtphook serve ARGUMENTS…`; `stderr`: a file its log lines are appended to.
    package static func start(
        _ arguments: [String],
        socket: String,
        stderr logPath: String? = nil
    ) async throws -> ServeProcess {
        let serve = ServeProcess(arguments: arguments, socket: socket, logPath: logPath)
        try await blocking { try serve.launch() }
        return serve
    }

    /// Starts the process (again, after ``kill9()`` or ``stop()``) and waits for its socket.
    package func launch() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Binary.require())
        process.arguments = ["serve"] + arguments
        process.standardOutput = FileHandle.nullDevice
        if let logPath {
            if !FileManager.default.fileExists(atPath: logPath) {
                _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            }
            let log = FileHandle(forWritingAtPath: logPath)
            _ = try log?.seekToEnd()
            process.standardError = log
        } else {
            process.standardError = FileHandle.nullDevice
        }
        let stale = FileManager.default.fileExists(atPath: socket)
        try process.run()
        lock.withLock { self.process = process }
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if stale {
                let fd = UnixDomainSocket.connect(socket)
                if fd >= 0 {
                    close(fd)
                    return
                }
            } else if FileManager.default.fileExists(atPath: socket) {
                return
            }
            guard process.isRunning else {
                throw HarnessError(
                    description: "serve exited with status \(process.terminationStatus) before its socket appeared"
                )
            }
            usleep(20_000)
        }
        process.terminate()
        throw HarnessError(description: "serve did not create \(socket) within 20 s")
    }

    package var pid: Int32? { lock.withLock { process?.processIdentifier } }
    package var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }
    package var terminationStatus: Int32? {
        lock.withLock { process.flatMap { $0.isRunning ? nil : $0.terminationStatus } }
    }
    package var terminationReason: Process.TerminationReason? {
        lock.withLock { process.flatMap { $0.isRunning ? nil : $0.terminationReason } }
    }

    /// Sends `signal` (SIGHUP for a reload, say) without waiting.
    package func signal(_ signal: Int32) {
        if let pid { kill(pid, signal) }
    }

    /// SIGTERM without waiting (for a `defer`).
    package func terminate() {
        lock.withLock { if let process, process.isRunning { process.terminate() } }
    }

    /// SIGTERM, then waits for the exit.
    package func stop() async throws {
        terminate()
        try await waitForExit()
    }

    /// SIGKILL, then waits for the exit: a crash.
    package func kill9() async throws {
        signal(SIGKILL)
        try await waitForExit()
    }

    package func waitForExit() async throws {
        guard let process = lock.withLock({ self.process }) else { return }
        try await blocking { process.waitUntilExit() }
    }
}
