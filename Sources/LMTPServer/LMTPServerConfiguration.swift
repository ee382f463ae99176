import LMTPCore

/// Everything an ``LMTPServer`` needs besides its hooks.
public struct LMTPServerConfiguration: Sendable, Hashable {
    /// Sockets to listen on (at least one).
    public var listeners: [LMTPListenAddress]
    /// Protocol limits and the announced host name.
    public var session: LMTPConfiguration
    /// A connection that sends nothing for this long gets `421 4.4.2` and is closed (RFC 5321: ≥ 5 min).
    public var idleTimeout: Duration
    /// After ``LMTPServer/stop()``, transactions in flight get this long to finish before connections are cut.
    public var shutdownGracePeriod: Duration
    /// Listen backlog per socket.
    public var backlog: Int32

    public init(
        listeners: [LMTPListenAddress], session: LMTPConfiguration = LMTPConfiguration(),
        idleTimeout: Duration = .seconds(300), shutdownGracePeriod: Duration = .seconds(30), backlog: Int32 = 512
    ) {
        self.listeners = listeners
        self.session = session
        self.idleTimeout = idleTimeout
        self.shutdownGracePeriod = shutdownGracePeriod
        self.backlog = backlog
    }
}

/// Why a server could not start.
public struct LMTPServerError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
