import LMTPCore

/// Everything an ``LMTPServer`` needs besides its hooks. Every resource is bounded; the defaults
/// are safe for a relay in front of one MTA.
public struct LMTPServerConfiguration: Sendable, Hashable {
    /// Sockets to listen on (at least one).
    public var listeners: [LMTPListenAddress]
    /// Protocol limits and the announced host name. With ``spillDirectory`` set and
    /// `session.spillThreshold` unset, 1 MiB is used.
    public var session: LMTPConfiguration
    /// Command timeout: a command (or the first one) not complete this long after the server
    /// started waiting for it gets `421 4.4.2` and the connection is closed (RFC 5321: ≥ 5 min).
    /// Bytes of a partial command do not extend it.
    public var idleTimeout: Duration
    /// DATA timeout: the deadline for message bytes, extended by every byte received at
    /// ``minimumDataRate`` (Postfix `smtpd_min_data_rate`), never beyond this value.
    public var dataTimeout: Duration
    /// Bytes per second a client must sustain in DATA; slower clients get `421 4.4.2` when the
    /// DATA deadline runs out. `0`: only inactivity counts.
    public var minimumDataRate: Int
    /// After ``LMTPServer/stop()``, transactions in flight get this long to finish before connections are cut.
    public var shutdownGracePeriod: Duration
    /// Listen backlog per socket.
    public var backlog: Int32
    /// Connections served at once; more get `421 4.7.0` and are closed.
    public var maxConnections: Int
    /// Connections at once from one TCP peer address; more get `421 4.7.0`. `0`: no per-peer limit.
    public var maxConnectionsPerPeer: Int
    /// TCP clients allowed to connect; others get `421 4.7.1` and are closed. `nil`: any client.
    /// (UNIX-socket clients are governed by the socket's mode and owner.)
    public var allowedClients: [LMTPClientNetwork]?
    /// Owner and group given to UNIX socket files after binding (names or numeric ids).
    public var unixSocketOwner: String?
    public var unixSocketGroup: String?
    /// Messages handed to the handler at once; further complete messages wait in a queue.
    public var maxConcurrentDeliveries: Int
    /// Message bytes handed to the handler at once (each message is held whole while it is parsed
    /// and rendered, with its payload); a message larger than this is delivered alone.
    public var maxDeliveryBytes: Int
    /// Messages that may wait for a delivery slot; beyond that every recipient gets
    /// `451 4.3.2` at once (the MTA keeps the message and retries) instead of the queue growing.
    public var maxQueuedDeliveries: Int
    /// Where message bytes beyond the in-memory limit per transaction are written while the
    /// message arrives (temporary files, removed after delivery; leftovers are removed at start).
    /// `nil`: whole messages are held in memory.
    public var spillDirectory: String?
    /// The prefix of the server's metric names (`PREFIX_connections_total`, …): a product's name
    /// belongs here. Letters, digits and `_`.
    public var metricsPrefix: String = "lmtp"

    public init(
        listeners: [LMTPListenAddress],
        session: LMTPConfiguration = LMTPConfiguration(),
        idleTimeout: Duration = .seconds(300),
        dataTimeout: Duration = .seconds(300),
        minimumDataRate: Int = 500,
        shutdownGracePeriod: Duration = .seconds(30),
        backlog: Int32 = 512,
        maxConnections: Int = 500,
        maxConnectionsPerPeer: Int = 100,
        allowedClients: [LMTPClientNetwork]? = nil,
        unixSocketOwner: String? = nil,
        unixSocketGroup: String? = nil,
        maxConcurrentDeliveries: Int = 64,
        maxDeliveryBytes: Int = 64 * 1024 * 1024,
        maxQueuedDeliveries: Int = 512,
        spillDirectory: String? = nil
    ) {
        self.listeners = listeners
        self.session = session
        self.idleTimeout = idleTimeout
        self.dataTimeout = dataTimeout
        self.minimumDataRate = minimumDataRate
        self.shutdownGracePeriod = shutdownGracePeriod
        self.backlog = backlog
        self.maxConnections = maxConnections
        self.maxConnectionsPerPeer = maxConnectionsPerPeer
        self.allowedClients = allowedClients
        self.unixSocketOwner = unixSocketOwner
        self.unixSocketGroup = unixSocketGroup
        self.maxConcurrentDeliveries = maxConcurrentDeliveries
        self.maxDeliveryBytes = maxDeliveryBytes
        self.maxQueuedDeliveries = maxQueuedDeliveries
        self.spillDirectory = spillDirectory
    }

    /// Checks the server-level values; returns a message naming the bad setting.
    public func validate() throws(LMTPServerError) {
        do { try session.validate() } catch { throw LMTPServerError(error.description) }
        if metricsPrefix.isEmpty || metricsPrefix.first!.isNumber
            || !metricsPrefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        {
            throw LMTPServerError(
                "metrics prefix must be letters, digits and '_', not starting with a digit, got \"\(metricsPrefix)\""
            )
        }
        guard !listeners.isEmpty else {
            throw LMTPServerError("no listener configured (need a UNIX socket or a TCP address)")
        }
        if idleTimeout < .milliseconds(100) || dataTimeout < .milliseconds(100) {
            throw LMTPServerError("command and data timeouts must be at least 100 ms")
        }
        if minimumDataRate < 0 {
            throw LMTPServerError("minimum data rate must not be negative, got \(minimumDataRate)")
        }
        if maxConnections < 1 { throw LMTPServerError("max connections must be at least 1, got \(maxConnections)") }
        if maxConnectionsPerPeer < 0 {
            throw LMTPServerError("max connections per peer must not be negative, got \(maxConnectionsPerPeer)")
        }
        if maxConcurrentDeliveries < 1 {
            throw LMTPServerError("max concurrent deliveries must be at least 1, got \(maxConcurrentDeliveries)")
        }
        if maxDeliveryBytes < 1024 {
            throw LMTPServerError("max delivery bytes must be at least 1024, got \(maxDeliveryBytes)")
        }
        if maxQueuedDeliveries < 0 {
            throw LMTPServerError("max queued deliveries must not be negative, got \(maxQueuedDeliveries)")
        }
        if session.spillThreshold != nil && spillDirectory == nil {
            throw LMTPServerError("an in-memory limit per transaction needs a spill directory")
        }
    }

    /// The session configuration as the server runs it (spill threshold filled in).
    var effectiveSession: LMTPConfiguration {
        var session = session
        if spillDirectory != nil && session.spillThreshold == nil { session.spillThreshold = 1024 * 1024 }
        return session
    }
}

/// Why a server could not start.
public struct LMTPServerError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
