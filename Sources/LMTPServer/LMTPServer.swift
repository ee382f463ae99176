import LMTPCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// An LMTP server (RFC 2033) on UNIX sockets and TCP, serving many connections at once.
///
/// ```swift
/// let server = LMTPServer(
///     configuration: .init(listeners: [.unix(path: "/run/lmtp.sock")]),
///     logger: Logger(label: "lmtp")
/// ) { message in
///     print(message.sender, message.recipients.count, message.data.count)
///     return message.recipients.map { _ in .delivered() }
/// }
/// try await server.run()   // until server.stop() or SIGTERM in a ServiceGroup
/// ```
///
/// The handler gets each complete message once and returns one result per recipient, in RCPT
/// order; the server answers each recipient with it. ``stop()`` is safe from any thread or task:
/// listeners close, idle connections get `421 4.3.2`, transactions in flight finish within
/// ``LMTPServerConfiguration/shutdownGracePeriod``, socket files are removed, and ``run()`` returns.
public final class LMTPServer: Service, Sendable {
    /// Handles one complete message; returns one result per recipient, in RCPT order.
    public typealias MessageHandler = @Sendable (LMTPMessage) async -> [LMTPRecipientResult]

    public let configuration: LMTPServerConfiguration
    private let policy: LMTPPolicy
    private let metrics = LMTPServerMetrics()
    private let handler: MessageHandler
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())
    private let listening: EventLoopPromise<[String]>

    private struct State {
        var stopping = false
        var serverChannels: [any Channel] = []
        var connections: [ObjectIdentifier: any Channel] = [:]
    }

    /// Creates a server; nothing is bound until ``run()``.
    public init(
        configuration: LMTPServerConfiguration,
        policy: LMTPPolicy = .acceptAll,
        logger: Logger = Logger(label: "lmtp-server"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        handler: @escaping MessageHandler
    ) {
        self.configuration = configuration
        self.policy = policy
        self.handler = handler
        self.logger = logger
        self.group = eventLoopGroup
        self.listening = eventLoopGroup.next().makePromise(of: [String].self)
    }

    deinit {
        listening.fail(LMTPServerError("server was released before listening"))
    }

    /// Waits until every listener is bound; returns their addresses (`unix:/path`, `127.0.0.1:2424`).
    /// Throws if the server failed to start.
    public func waitUntilListening() async throws -> [String] {
        try await listening.futureResult.get()
    }

    /// Binds every listener and serves until ``stop()`` (or graceful shutdown of the enclosing
    /// `ServiceGroup`); returns when all connections have ended.
    public func run() async throws {
        do {
            try configuration.session.validate()
            guard !configuration.listeners.isEmpty else { throw LMTPServerError("no listener configured (need a UNIX socket or a TCP address)") }
        } catch {
            listening.fail(error)
            throw error
        }
        var servers: [NIOAsyncChannel<NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>, Never>] = []
        var addresses: [String] = []
        do {
            for listener in configuration.listeners {
                let server = try await bind(listener)
                servers.append(server)
                addresses.append(Self.describe(listener, server.channel.localAddress))
            }
        } catch {
            for server in servers { try? await server.channel.close() }
            for case .unix(let path, _) in configuration.listeners.prefix(servers.count) { UnixSocketPath.remove(path) }
            listening.fail(error)
            throw error
        }
        let alreadyStopping = state.withLockedValue { state in
            state.serverChannels = servers.map { $0.channel }
            return state.stopping
        }
        if alreadyStopping { for server in servers { server.channel.close(promise: nil) } }
        logger.info("listening", metadata: ["addresses": "\(addresses.joined(separator: " "))"])
        listening.succeed(addresses)

        defer {
            for case .unix(let path, _) in configuration.listeners { UnixSocketPath.remove(path) }
        }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for server in servers {
                    group.addTask { try await self.accept(on: server) }
                }
            }
        } onGracefulShutdown: {
            self.stop()
        }
        logger.info("stopped")
    }

    /// Stops the server; safe to call from any thread or task, any number of times.
    public func stop() {
        let (servers, connections, first) = state.withLockedValue { state in
            let first = !state.stopping
            state.stopping = true
            return (state.serverChannels, Array(state.connections.values), first)
        }
        guard first else { return }
        logger.info("shutting down", metadata: ["connections": "\(connections.count)"])
        for server in servers { server.close(promise: nil) }
        for connection in connections { Self.signalShutdown(connection) }
        let grace = configuration.shutdownGracePeriod
        let loop = group.next()
        loop.scheduleTask(in: TimeAmount.nanoseconds(Int64(grace.components.seconds) * 1_000_000_000 + grace.components.attoseconds / 1_000_000_000)) {
            let remaining = self.state.withLockedValue { Array($0.connections.values) }
            if !remaining.isEmpty {
                self.logger.warning("grace period over, closing connections", metadata: ["connections": "\(remaining.count)"])
            }
            for connection in remaining { connection.close(promise: nil) }
        }
    }

    private static func signalShutdown(_ channel: any Channel) {
        channel.eventLoop.execute {
            channel.pipeline.fireUserInboundEventTriggered(LMTPShutdownEvent())
        }
    }

    private static func describe(_ listener: LMTPListenAddress, _ bound: SocketAddress?) -> String {
        switch listener {
        case .unix: return listener.description
        case .tcp(let host, _):
            return LMTPListenAddress.tcp(host: host, port: bound?.port ?? 0).description
        }
    }

    private func bind(_ listener: LMTPListenAddress) async throws -> NIOAsyncChannel<NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>, Never> {
        let idle = configuration.idleTimeout
        let idleAmount = TimeAmount.nanoseconds(Int64(idle.components.seconds) * 1_000_000_000 + idle.components.attoseconds / 1_000_000_000)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idleAmount))
                try channel.pipeline.syncOperations.addHandler(LMTPInboundEventHandler())
                return try NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(isOutboundHalfClosureEnabled: false)
                )
            }
        }
        switch listener {
        case .unix(let path, let mode):
            try UnixSocketPath.prepare(path)
            let server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false, childChannelInitializer: initializer)
            try UnixSocketPath.setMode(path, mode)
            return server
        case .tcp(let host, let port):
            return try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
        }
    }

    private func accept(on server: NIOAsyncChannel<NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>, Never>) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    private func register(_ channel: any Channel) {
        let stopping = state.withLockedValue { state in
            state.connections[ObjectIdentifier(channel)] = channel
            return state.stopping
        }
        if stopping { Self.signalShutdown(channel) }
    }

    private func unregister(_ channel: any Channel) {
        _ = state.withLockedValue { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// One connection: the greeting, then the session's actions until it closes.
    private func serve(_ connection: NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>) async {
        let channel = connection.channel
        register(channel)
        defer { unregister(channel) }
        let peer = channel.remoteAddress.map { "\($0)" } ?? "local"
        var logger = self.logger
        logger[metadataKey: "peer"] = "\(peer)"
        logger.debug("connection opened")
        metrics.connections.increment()
        metrics.activeConnections.increment()
        defer { metrics.activeConnections.decrement() }
        var session = LMTPSession(configuration: configuration.session)
        let clock = ContinuousClock()
        var lastInput = clock.now
        do {
            try await connection.executeThenClose { inbound, outbound in
                var pending = channel.allocator.buffer(capacity: 512)
                func flush() async throws {
                    guard pending.readableBytes > 0 else { return }
                    try await outbound.write(pending)
                    pending.clear()
                }
                pending.writeString(session.greeting.wireFormat)
                metrics.reply(code: session.greeting.code)
                var events = inbound.makeAsyncIterator()
                while true {
                    switch session.nextAction() {
                    case .send(let reply):
                        pending.writeString(reply.wireFormat)
                        metrics.reply(code: reply.code)
                        continue
                    case .checkSender(let sender):
                        let decision = await policy.sender?(sender) ?? .accept
                        session.resolveSender(decision)
                        continue
                    case .checkRecipient(let recipient):
                        let decision = await policy.recipient?(recipient) ?? .accept
                        session.resolveRecipient(decision)
                        continue
                    case .deliver(let message):
                        try await flush()
                        metrics.transactions.increment()
                        metrics.messageBytes.increment(by: message.data.count)
                        metrics.messageSize.record(message.data.count)
                        let results = await handler(message)
                        session.finishDelivery(results)
                        lastInput = clock.now
                        continue
                    case .close:
                        try await flush()
                        if let lost = session.lostInDataBytes {
                            logger.info("lost connection in DATA; message discarded", metadata: ["bytes": "\(lost)"])
                        }
                        return
                    case .needInput:
                        try await flush()
                    }
                    guard let event = try await events.next() else {
                        session.receiveEndOfInput()
                        continue
                    }
                    switch event {
                    case .bytes(let bytes):
                        lastInput = clock.now
                        session.receive(bytes.readableBytesView)
                    case .idle:
                        if clock.now - lastInput >= configuration.idleTimeout {
                            logger.info("idle timeout")
                            session.idleTimeout()
                        }
                    case .shutdown:
                        session.beginShutdown()
                    }
                }
            }
        } catch {
            logger.debug("connection ended with error", metadata: ["error": "\(error)"])
        }
        logger.debug("connection closed")
    }
}
