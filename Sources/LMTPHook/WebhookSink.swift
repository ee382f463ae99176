import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP receiver for webhook POSTs: the built-in local receiver used when no webhook is
/// configured (`lmtphook serve` without `--webhook`, `lmtphook demo`) and by `lmtphook sink`.
///
/// Every request is handed to `record` on a dedicated thread (writing to a file or stdout never
/// blocks the event loop), and answered only after `record` returned. The status is 200, or `NNN`
/// for a path starting with `/status/NNN` (to try how an MTA handles failures).
package final class WebhookSink: Sendable {
    /// One received request.
    package struct Request: Sendable {
        package var method: String
        package var path: String
        package var headers: [(String, String)]
        package var body: [UInt8]
    }

    private let channel: any Channel
    private let recorder: NIOThreadPool
    private let accepted: NIOLockedValueBox<Int>

    /// TCP connections accepted so far (shows whether clients reuse connections).
    package var connectionsAccepted: Int { accepted.withLockedValue { $0 } }

    /// The URL to POST to, e.g. `http://127.0.0.1:41234/`.
    package let url: String

    private init(channel: any Channel, recorder: NIOThreadPool, accepted: NIOLockedValueBox<Int>, url: String) {
        self.channel = channel
        self.recorder = recorder
        self.accepted = accepted
        self.url = url
    }

    /// Starts a receiver on `host:port` (port 0 picks a free one).
    package static func start(
        host: String = "127.0.0.1",
        port: Int = 0,
        maxBodySize: Int = 256 * 1024 * 1024,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        respond: (@Sendable (Request) -> Int?)? = nil,
        responseBody: (@Sendable () -> String?)? = nil,
        responderThreads: Int = 1,
        record: @escaping @Sendable (Request) -> Void
    ) async throws -> WebhookSink {
        let recorder = NIOThreadPool(numberOfThreads: responderThreads)
        recorder.start()
        let accepted = NIOLockedValueBox(0)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    accepted.withLockedValue { $0 += 1 }
                    return channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(
                            SinkHandler(
                                recorder: recorder,
                                maxBodySize: maxBodySize,
                                respond: respond,
                                responseBody: responseBody,
                                record: record
                            )
                        )
                    }
                }
                .bind(host: host, port: port)
                .get()
            let boundPort = channel.localAddress?.port ?? port
            let hostPart = host.contains(":") ? "[\(host)]" : host
            return WebhookSink(
                channel: channel,
                recorder: recorder,
                accepted: accepted,
                url: "http://\(hostPart):\(boundPort)/"
            )
        } catch {
            try? await recorder.shutdownGracefully()
            throw error
        }
    }

    /// Stops listening and waits for the recorder thread.
    package func stop() async {
        try? await channel.close()
        try? await recorder.shutdownGracefully()
    }
}

/// Collects one request at a time and answers it after recording.
private final class SinkHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let recorder: NIOThreadPool
    private let maxBodySize: Int
    private let record: @Sendable (WebhookSink.Request) -> Void
    private let respond: (@Sendable (WebhookSink.Request) -> Int?)?
    private let responseBody: (@Sendable () -> String?)?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(
        recorder: NIOThreadPool,
        maxBodySize: Int,
        respond: (@Sendable (WebhookSink.Request) -> Int?)?,
        responseBody: (@Sendable () -> String?)?,
        record: @escaping @Sendable (WebhookSink.Request) -> Void
    ) {
        self.recorder = recorder
        self.respond = respond
        self.responseBody = responseBody
        self.maxBodySize = maxBodySize
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            tooLarge = false
        case .body(var buffer):
            if body.count + buffer.readableBytes > maxBodySize {
                tooLarge = true
            } else if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                body.append(contentsOf: bytes)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            if tooLarge {
                respond(context: context, head: head, status: .payloadTooLarge)
                return
            }
            let request = WebhookSink.Request(
                method: "\(head.method)",
                path: head.uri,
                headers: head.headers.map { ($0.name, $0.value) },
                body: body
            )
            body = []
            let record = self.record
            let respond = self.respond
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            recorder.runIfActive(eventLoop: context.eventLoop) { () -> HTTPResponseStatus in
                record(request)
                return respond?(request).map { HTTPResponseStatus(statusCode: $0) } ?? Self.status(for: head.uri)
            }.whenComplete { result in
                let (handler, context) = loopBound.value
                handler.respond(context: context, head: head, status: (try? result.get()) ?? .internalServerError)
            }
        }
    }

    private static func status(for uri: String) -> HTTPResponseStatus {
        let parts = uri.split(separator: "/")
        if parts.count >= 2, parts[0] == "status", let code = Int(parts[1].prefix(3)), (100...599).contains(code) {
            return HTTPResponseStatus(statusCode: code)
        }
        return .ok
    }

    /// The response body: like Slack's (`ok`) under `/slack/`, like Discord's, ntfy's and Gotify's
    /// (the saved message with its `id`) under `/discord/`, `/ntfy/` and `/gotify/`, else a small
    /// JSON object; so a configuration can be tried against the sink with the targets' success rules.
    static func responseBody(for uri: String, status: HTTPResponseStatus) -> String {
        guard status.code < 300 else { return #"{"ok":false,"error":"sink answered \#(status.code)"}"# }
        if uri.hasPrefix("/slack/") { return "ok" }
        if uri.hasPrefix("/discord/") || uri.hasPrefix("/ntfy/") || uri.hasPrefix("/gotify/") {
            return #"{"id":"1000000000000000001","type":0,"channel_id":"1"}"#
        }
        return #"{"ok":true}"#
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus) {
        let payload = responseBody?() ?? Self.responseBody(for: head.uri, status: status)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(payload.utf8.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil
        )
        context.write(
            wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: payload)))),
            promise: nil
        )
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension SinkHandler: Sendable {}
