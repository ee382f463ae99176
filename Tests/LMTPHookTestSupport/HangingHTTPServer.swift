import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP server that accepts connections, reads whatever comes, and never answers: a webhook
/// receiver that hangs. ``stop()`` closes the listener and every connection it accepted (so the
/// hanging requests end with a connection error).
package final class HangingHTTPServer: Sendable {
    private let channel: any Channel
    private let accepted: NIOLockedValueBox<[any Channel]>
    package let port: Int

    private init(channel: any Channel, accepted: NIOLockedValueBox<[any Channel]>) {
        self.channel = channel
        self.accepted = accepted
        self.port = channel.localAddress?.port ?? 0
    }

    package static func start() async throws -> HangingHTTPServer {
        let accepted = NIOLockedValueBox<[any Channel]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Swallow())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return HangingHTTPServer(channel: channel, accepted: accepted)
    }

    package var url: String { "http://127.0.0.1:\(port)/" }

    /// Connections accepted so far.
    package var connections: Int { accepted.withLockedValue { $0.count } }

    package func stop() async {
        try? await channel.close()
        for child in accepted.withLockedValue({ $0 }) { try? await child.close() }
    }

    private final class Swallow: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }
}
