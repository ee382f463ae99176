import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP server that accepts connections, reads whatever comes, and never answers: a webhook
/// receiver that hangs. ``stop()`` closes the listener and every connection it accepted (so the
/// hanging requests end with a connection error).
package final class HangingHTTPServer: Sendable {
    private struct Accepted {
        var channels: [any Channel] = []
        var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let channel: any Channel
    private let accepted: NIOLockedValueBox<Accepted>
    package let port: Int

    private init(channel: any Channel, accepted: NIOLockedValueBox<Accepted>) {
        self.channel = channel
        self.accepted = accepted
        self.port = channel.localAddress?.port ?? 0
    }

    package static func start() async throws -> HangingHTTPServer {
        let accepted = NIOLockedValueBox(Accepted())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let ready = accepted.withLockedValue { state in
                    state.channels.append(channel)
                    let count = state.channels.count
                    defer { state.waiters.removeAll { $0.count <= count } }
                    return state.waiters.filter { $0.count <= count }.map(\.continuation)
                }
                for waiter in ready { waiter.resume() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Swallow())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return HangingHTTPServer(channel: channel, accepted: accepted)
    }

    package var url: String { "http://127.0.0.1:\(port)/" }

    /// Connections accepted so far.
    package var connections: Int { accepted.withLockedValue { $0.channels.count } }

    /// Returns once `count` connections have been accepted (no polling).
    package func waitForConnections(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = accepted.withLockedValue { state in
                if state.channels.count >= count { return true }
                state.waiters.append((count, continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }

    package func stop() async {
        try? await channel.close()
        for child in accepted.withLockedValue({ $0.channels }) { try? await child.close() }
    }

    private final class Swallow: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }
}
