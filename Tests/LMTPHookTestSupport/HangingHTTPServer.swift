import NIOCore
import NIOPosix

/// A TCP server that accepts connections, reads whatever comes, and never answers: a webhook
/// receiver that hangs.
package final class HangingHTTPServer: Sendable {
    private let channel: any Channel
    package let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    package static func start() async throws -> HangingHTTPServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Swallow()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return HangingHTTPServer(channel: channel)
    }

    package var url: String { "http://127.0.0.1:\(port)/" }

    package func stop() async { try? await channel.close() }

    private final class Swallow: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }
}
