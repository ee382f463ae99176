import Delivery
import Foundation
import LMTPServer
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Spool

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's control socket (like Postfix's `qmgr` for `postqueue -f`): `lmtphook spool …`
/// sends one ``SpoolRequest`` as a JSON line and reads ``SpoolAnswer`` lines back, so replays
/// and drops go through the running engine — its configuration, headers, secrets, success rules,
/// claims and slots. A UNIX socket of mode 0600 (in the spool directory by default): only the
/// daemon's user (and root) can use it. Stops when cancelled or at graceful shutdown; a request
/// in progress then ends with the connection.
package final class ControlServer: Service, Sendable {
    package let path: String
    private let operations: SpoolOperations
    private let logger: Logger

    package init(path: String, operations: SpoolOperations, logger: Logger) {
        self.path = path
        self.operations = operations
        self.logger = logger
    }

    /// The socket path for a spool directory when none is configured.
    package static func defaultPath(spool: String) -> String { spool + "/control.sock" }

    /// Largest request line accepted.
    static let maxRequestBytes = 64 * 1024

    /// Serves until cancelled (graceful shutdown); the socket file is removed when it returns.
    package func run() async throws {
        let path = path
        let answering = try await operations.files.runIfActive { () throws -> Bool in
            if Self.isAnswering(path) { return true }
            var info = stat()
            if lstat(path, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                    throw LMTPServerError("\(path) exists and is not a socket; refusing to replace it")
                }
                unlink(path)  // stale: its daemon is gone
            }
            return false
        }
        if answering {
            logger.warning(
                "another daemon answers on the control socket; this one serves none",
                metadata: ["path": "\(path)"]
            )
            return
        }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        guard (try? await operations.files.runIfActive({ chmod(path, 0o600) == 0 })) == true else {
            try? await server.channel.close()
            throw LMTPServerError("cannot set mode 0600 on \(path)")
        }
        logger.info("control socket", metadata: ["path": "\(path)"])
        defer { unlink(path) }  // a path of the spool directory; removing it is instant
        do {
            try await serve(server)
        } catch  where Task.isCancelled {
            // Stopped: the accept loop ends with the listener.
        }
    }

    private func serve(_ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) async throws {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { connections in
                        for try await connection in connections {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                }
            } onGracefulShutdown: {
                server.channel.close(promise: nil)
            }
        } onCancel: {
            server.channel.close(promise: nil)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        try? await connection.executeThenClose { inbound, outbound in
            var line: [UInt8] = []
            for try await var buffer in inbound {
                line += buffer.readBytes(length: buffer.readableBytes) ?? []
                if line.contains(0x0A) || line.count > Self.maxRequestBytes { break }
            }
            let encoder = JSONEncoder()
            let send: @Sendable (SpoolAnswer) async -> Void = { answer in
                guard var data = try? encoder.encode(answer) else { return }
                data.append(0x0A)
                try? await outbound.write(ByteBuffer(bytes: data))
            }
            guard let end = line.firstIndex(of: 0x0A),
                let request = try? JSONDecoder().decode(SpoolRequest.self, from: Data(line[..<end]))
            else {
                await send(.err("lmtphook serve: not a spool request"))
                await send(.exit(64))
                return
            }
            logger.info(
                "control request",
                metadata: [
                    "command": "\(request.command.rawValue)", "ids": "\(request.ids.count)", "all": "\(request.all)",
                ]
            )
            let status = await operations.run(request, emit: send)
            await send(.exit(status))
        }
    }

    /// `true` when something accepts connections on the socket at `path`.
    package static func isAnswering(_ path: String) -> Bool {
        let fd = UnixDomainSocket.connect(path)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }
}
