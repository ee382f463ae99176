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
///     return LMTPRecipientResults(all: .delivered())
/// }
/// try await server.run()   // until server.stop() or SIGTERM in a ServiceGroup
/// ```
///
/// The handler gets each complete message once and returns one result per recipient, in RCPT
/// order; the server answers each recipient with it. ``stop()`` is safe from any thread or task:
/// listeners close, idle connections get `421 4.3.2`, transactions in flight finish within
/// ``LMTPServerConfiguration/shutdownGracePeriod``, socket files are removed, and ``run()`` returns.
///
/// Each connection is served by a task that prefers its channel's event loop as its executor, and
/// the policy hooks and the handler run in that task: code that is not isolated to an actor runs
/// on the event loop. It must not block — hand blocking work (files, `fsync`, blocking network
/// calls) to a thread pool (`NIOThreadPool`) and await it.
public final class LMTPServer: Service, Sendable {
    /// Handles one complete message; returns a result for each recipient, by recipient.
    public typealias MessageHandler = @Sendable (LMTPMessage) async -> LMTPRecipientResults
    /// Handles one complete message that may be in a file: with an ``LMTPMessageFile``, the
    /// message is in that file and `message.data` is empty (it arrived bigger than the spill
    /// threshold); without one, it is in `message.data`.
    public typealias FileMessageHandler = @Sendable (LMTPMessage, LMTPMessageFile?) async -> LMTPRecipientResults

    public let configuration: LMTPServerConfiguration
    private let policy: LMTPPolicy
    private let metrics: LMTPServerMetrics
    private let handler: FileMessageHandler
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())
    private let listening: EventLoopPromise<[LMTPListenAddress]>
    private let deliveries: DeliveryGate
    private let threadPool: NIOThreadPool
    /// Whether a spilled message is read back into `message.data` for the handler.
    private let readsBack: Bool

    private struct State {
        /// A server runs once: set by the first ``run()``.
        var started = false
        var stopping = false
        var serverChannels: [any Channel] = []
        var connections: [ObjectIdentifier: any Channel] = [:]
        /// Open connections per TCP peer address.
        var peers: [String: Int] = [:]
        /// Every accepted channel until it closes (served or not).
        var accepted: [ObjectIdentifier: any Channel] = [:]
    }

    /// Why a connection was turned away before its session started.
    enum Refusal: String {
        case notAllowed = "not_allowed"
        case tooManyConnections = "too_many_connections"
        case tooManyFromPeer = "too_many_from_peer"
    }

    /// Creates a server; nothing is bound until ``run()``.
    public convenience init(
        configuration: LMTPServerConfiguration,
        policy: LMTPPolicy = .acceptAll,
        logger: Logger = Logger(label: "lmtp-server"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        handler: @escaping MessageHandler
    ) {
        self.init(
            configuration: configuration,
            policy: policy,
            logger: logger,
            eventLoopGroup: eventLoopGroup,
            fileHandler: { message, _ in await handler(message) },
            readsBack: true
        )
    }

    /// Creates a server whose handler takes a message too big for memory as a file (see
    /// ``FileMessageHandler``) instead of having it read back whole: for handlers that stream
    /// it or keep it on disk. Nothing is bound until ``run()``.
    public convenience init(
        configuration: LMTPServerConfiguration,
        policy: LMTPPolicy = .acceptAll,
        logger: Logger = Logger(label: "lmtp-server"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        fileHandler: @escaping FileMessageHandler
    ) {
        self.init(
            configuration: configuration,
            policy: policy,
            logger: logger,
            eventLoopGroup: eventLoopGroup,
            fileHandler: fileHandler,
            readsBack: false
        )
    }

    private init(
        configuration: LMTPServerConfiguration,
        policy: LMTPPolicy,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup,
        fileHandler handler: @escaping FileMessageHandler,
        readsBack: Bool
    ) {
        self.readsBack = readsBack
        self.configuration = configuration
        self.metrics = LMTPServerMetrics(prefix: configuration.metricsPrefix)
        self.policy = policy
        self.handler = handler
        self.logger = logger
        self.group = eventLoopGroup
        self.listening = eventLoopGroup.next().makePromise(of: [LMTPListenAddress].self)
        self.deliveries = DeliveryGate(
            slots: configuration.maxConcurrentDeliveries,
            byteBudget: configuration.maxDeliveryBytes,
            queueLimit: configuration.maxQueuedDeliveries
        )
        self.threadPool = NIOThreadPool.singleton
    }

    /// Messages being delivered and messages waiting for a delivery slot.
    public var deliveryLoad: (active: Int, waiting: Int) { deliveries.load }

    deinit {
        listening.fail(LMTPServerError("server was released before listening"))
    }

    /// Waits until every listener is bound; returns the addresses, in the order of
    /// ``LMTPServerConfiguration/listeners``, with the port a TCP listener on port 0 was given.
    /// Throws if the server failed to start.
    public func waitUntilListening() async throws -> [LMTPListenAddress] {
        try await listening.futureResult.get()
    }

    /// Binds every listener and serves until ``stop()`` (or graceful shutdown of the enclosing
    /// `ServiceGroup`); returns when all connections have ended, with every listener closed and
    /// every socket file removed. A server runs once: a second call throws.
    public func run() async throws {
        let first = state.withLockedValue { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        guard first else {
            throw LMTPServerError("run() was called on a server that already ran: an LMTPServer runs once")
        }
        do {
            try configuration.validate()
            if let directory = configuration.spillDirectory { try await prepareSpillDirectory(directory) }
        } catch {
            listening.fail(error)
            throw error
        }
        var servers: [NIOAsyncChannel<NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>, Never>] = []
        var addresses: [LMTPListenAddress] = []
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
        logger.info("listening", metadata: ["addresses": "\(addresses.map(\.description).joined(separator: " "))"])
        for case .tcp(let host, _) in configuration.listeners
        where configuration.allowedClients == nil && !Self.isLoopback(host) {
            logger.warning(
                "TCP listener on a non-loopback address without an allow-list: any host that reaches it can submit mail",
                metadata: ["host": "\(host)"]
            )
        }
        listening.succeed(addresses)

        defer {
            for case .unix(let path, _) in configuration.listeners { UnixSocketPath.remove(path) }
        }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for server in servers {
                    group.addTask {
                        // One listener ending with an error must not cancel the others: a cancelled
                        // accept loop would drop connections already accepted but not yet served.
                        do { try await self.accept(on: server) } catch {
                            self.logger.debug("listener ended", metadata: ["error": "\(error)"])
                        }
                    }
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
        loop.scheduleTask(
            in: TimeAmount.nanoseconds(
                Int64(grace.components.seconds) * 1_000_000_000 + grace.components.attoseconds / 1_000_000_000
            )
        ) {
            let remaining = self.state.withLockedValue { Array($0.accepted.values) }
            if !remaining.isEmpty {
                self.logger.warning(
                    "grace period over, closing connections",
                    metadata: ["connections": "\(remaining.count)"]
                )
            }
            for connection in remaining { connection.close(promise: nil) }
        }
    }

    private static func isLoopback(_ host: String) -> Bool {
        guard let bytes = LMTPClientNetwork.parseAddress(host) else { return host == "localhost" }
        return LMTPClientNetwork("127.0.0.0/8")!.contains(bytes) || LMTPClientNetwork("::1")!.contains(bytes)
    }

    private func prepareSpillDirectory(_ directory: String) async throws {
        let removed = try await threadPool.runIfActive { () throws -> Int in
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw LMTPServerError("cannot create spill directory \(directory): \(String(cString: strerror(errno)))")
            }
            return SpillFile.removeLeftovers(in: directory)
        }
        if removed > 0 {
            logger.info("removed partial messages of an earlier process", metadata: ["files": "\(removed)"])
        }
    }

    private static func signalShutdown(_ channel: any Channel) {
        channel.eventLoop.execute {
            channel.pipeline.fireUserInboundEventTriggered(LMTPShutdownEvent())
        }
    }

    private static func describe(_ listener: LMTPListenAddress, _ bound: SocketAddress?) -> LMTPListenAddress {
        switch listener {
        case .unix: return listener
        case .tcp(let host, let port): return .tcp(host: host, port: bound?.port ?? port)
        }
    }

    private func bind(
        _ listener: LMTPListenAddress
    ) async throws -> NIOAsyncChannel<NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>, Never> {
        let shortest = min(configuration.idleTimeout, configuration.dataTimeout)
        let tick = TimeAmount(min(max(shortest / 10, .milliseconds(10)), .seconds(1)))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>> = {
            channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(LMTPInboundEventHandler(tickInterval: tick))
                let connection = try NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(isOutboundHalfClosureEnabled: false)
                )
                // A connection accepted while the server stops can be dropped by the server's
                // stream before anyone serves it (swift-nio #3481); its writer would then trap on
                // deinit. Keep the writer until the channel closes and finish it then, and keep the
                // channel where stop() can close it.
                let outbound = connection.outbound
                self.state.withLockedValue { $0.accepted[ObjectIdentifier(channel)] = channel }
                channel.closeFuture.whenComplete { _ in
                    outbound.finish()
                    _ = self.state.withLockedValue { $0.accepted.removeValue(forKey: ObjectIdentifier(channel)) }
                }
                return connection
            }
        }
        switch listener {
        case .unix(let path, let mode):
            try UnixSocketPath.prepare(path)
            let server = try await bootstrap.bind(
                unixDomainSocketPath: path,
                cleanupExistingSocketFile: false,
                childChannelInitializer: initializer
            )
            try UnixSocketPath.setMode(path, mode)
            try UnixSocketPath.setOwner(
                path,
                owner: configuration.unixSocketOwner,
                group: configuration.unixSocketGroup
            )
            return server
        case .tcp(let host, let port):
            return try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
        }
    }

    private func accept(on server: NIOAsyncChannel<NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>, Never>) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    // Served on its channel's event loop (see `EventLoopTaskExecutor`).
                    group.addTask(executorPreference: EventLoopTaskExecutor(connection.channel.eventLoop)) {
                        await self.serve(connection)
                    }
                }
            }
        }
    }

    /// Admits a connection (allow-list, connection limits) and tracks it; `nil` when admitted.
    private func register(_ channel: any Channel, peerAddress: String?) -> Refusal? {
        if let peerAddress, let allowed = configuration.allowedClients,
            !allowed.contains(where: { $0.contains(peerAddress) })
        {
            return .notAllowed
        }
        let (refusal, stopping): (Refusal?, Bool) = state.withLockedValue { state in
            if state.connections.count >= configuration.maxConnections { return (.tooManyConnections, state.stopping) }
            if let peerAddress, configuration.maxConnectionsPerPeer > 0 {
                let open = state.peers[peerAddress, default: 0]
                if open >= configuration.maxConnectionsPerPeer { return (.tooManyFromPeer, state.stopping) }
                state.peers[peerAddress] = open + 1
            }
            state.connections[ObjectIdentifier(channel)] = channel
            return (nil, state.stopping)
        }
        if refusal == nil && stopping { Self.signalShutdown(channel) }
        return refusal
    }

    private func unregister(_ channel: any Channel, peerAddress: String?) {
        state.withLockedValue { state in
            state.connections.removeValue(forKey: ObjectIdentifier(channel))
            if let peerAddress, configuration.maxConnectionsPerPeer > 0, let open = state.peers[peerAddress] {
                state.peers[peerAddress] = open > 1 ? open - 1 : nil
            }
        }
    }

    /// Answers `421` and closes a connection that was not admitted.
    private func refuse(
        _ connection: NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>,
        _ refusal: Refusal,
        logger: Logger
    ) async {
        let host = configuration.session.hostname
        let reply: LMTPReply
        switch refusal {
        case .notAllowed: reply = LMTPReply(421, "4.7.1", "\(host) Error: client not allowed")
        case .tooManyConnections:
            reply = LMTPReply(421, "4.7.0", "\(host) Error: too many connections, try again later")
        case .tooManyFromPeer:
            reply = LMTPReply(421, "4.7.0", "\(host) Error: too many connections from your address, try again later")
        }
        logger.warning("connection refused", metadata: ["reason": "\(refusal.rawValue)"])
        metrics.refused(refusal)
        metrics.reply(code: 421)
        try? await connection.executeThenClose { _, outbound in
            try await outbound.write(ByteBuffer(string: reply.wireFormat))
        }
    }

    /// One connection: admission, the greeting, then the session's actions until it closes.
    private func serve(_ connection: NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>) async {
        let channel = connection.channel
        let remote = channel.remoteAddress
        let peer = remote.map { "\($0)" } ?? "local"
        let peerAddress = remote?.ipAddress
        var logger = self.logger
        logger[metadataKey: "peer"] = "\(peer)"
        if let refusal = register(channel, peerAddress: peerAddress) {
            await refuse(connection, refusal, logger: logger)
            return
        }
        defer { unregister(channel, peerAddress: peerAddress) }
        logger.debug("connection opened")
        metrics.connections.increment()
        metrics.activeConnections.increment()
        defer { metrics.activeConnections.decrement() }
        await LMTPConnection(
            configuration: configuration,
            policy: policy,
            metrics: metrics,
            deliveries: deliveries,
            threadPool: threadPool,
            handler: handler,
            readsBack: readsBack,
            logger: logger
        ).serve(connection)
    }
}

/// A complete message in a file, handed to a ``LMTPServer/FileMessageHandler``. The file is the
/// server's: it is removed when the handler returns, so a handler that keeps the message opens
/// it (an open descriptor outlives the name) or links it elsewhere before returning.
public struct LMTPMessageFile: Sendable, Hashable {
    /// Where the message is, until the handler returns.
    public let path: String
    /// The message's size in bytes.
    public let size: Int

    public init(path: String, size: Int) {
        self.path = path
        self.size = size
    }
}
