import NIOCore
import NIOHTTP1
import NIOPosix

/// A tiny HTTP server for operators: `GET /metrics` (Prometheus text exposition, from `render`)
/// and `GET /healthz` (200 `ok` when ready, else 503 with the reason). Bind it to loopback or a
/// management network; it serves nothing else.
package final class MetricsServer: Sendable {
    private let channel: any Channel
    /// The bound address, `host:port`.
    package let address: String

    private init(channel: any Channel, address: String) {
        self.channel = channel
        self.address = address
    }

    /// Starts serving on `host:port` (port 0 picks a free one).
    package static func start(
        host: String,
        port: Int,
        render: @escaping @Sendable () -> [UInt8],
        health: @escaping @Sendable () -> (ready: Bool, detail: String),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> MetricsServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(render: render, health: health))
                }
            }
            .bind(host: host, port: port)
            .get()
        let bound = channel.localAddress?.port ?? port
        return MetricsServer(channel: channel, address: host.contains(":") ? "[\(host)]:\(bound)" : "\(host):\(bound)")
    }

    package func stop() async { try? await channel.close() }
}

private final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: @Sendable () -> [UInt8]
    private let health: @Sendable () -> (ready: Bool, detail: String)
    private var head: HTTPRequestHead?

    init(render: @escaping @Sendable () -> [UInt8], health: @escaping @Sendable () -> (ready: Bool, detail: String)) {
        self.render = render
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let (status, type, body): (HTTPResponseStatus, String, [UInt8])
            switch (head.method, path) {
            case (.GET, "/metrics"), (.HEAD, "/metrics"):
                (status, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", render())
            case (.GET, "/healthz"), (.HEAD, "/healthz"):
                let state = health()
                (status, type, body) =
                    state.ready
                    ? (.ok, "text/plain", Array("ok\n".utf8))
                    : (.serviceUnavailable, "text/plain", Array("not ready: \(state.detail)\n".utf8))
            case (_, "/metrics"), (_, "/healthz"):
                (status, type, body) = (.methodNotAllowed, "text/plain", Array("GET only\n".utf8))
            default:
                (status, type, body) = (.notFound, "text/plain", Array("not found: /metrics and /healthz only\n".utf8))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: String(body.count))
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                promise: nil
            )
            if head.method != .HEAD {
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))),
                    promise: nil
                )
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !head.isKeepAlive {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}

@available(*, unavailable)
extension MetricsHandler: Sendable {}
