/// Limits and identity of one LMTP session. Plain values; the defaults follow the protocol notes.
public struct LMTPConfiguration: Sendable, Hashable {
    /// The name the server announces in its greeting and LHLO reply.
    public var hostname: String
    /// Largest message accepted, in bytes after dot-unstuffing (advertised as `SIZE`).
    public var maxMessageSize: Int
    /// Most recipients accepted in one transaction; more get `452 4.5.3`.
    public var maxRecipients: Int
    /// Longest command line accepted, in bytes including its CRLF; longer lines get `500 5.5.2`.
    public var maxCommandLineLength: Int
    /// After this many client errors in one session the server answers `421 4.7.0` and closes.
    public var maxErrors: Int
    /// Whether `XFORWARD` is advertised and accepted (Postfix `lmtp_send_xforward_command`).
    public var xforward: Bool

    public init(
        hostname: String = "localhost",
        maxMessageSize: Int = 50 * 1024 * 1024,
        maxRecipients: Int = 1000,
        maxCommandLineLength: Int = 4096,
        maxErrors: Int = 20,
        xforward: Bool = true
    ) {
        self.hostname = hostname
        self.maxMessageSize = maxMessageSize
        self.maxRecipients = maxRecipients
        self.maxCommandLineLength = maxCommandLineLength
        self.maxErrors = maxErrors
        self.xforward = xforward
    }

    /// Checks the values a session relies on; returns a message naming the bad setting.
    public func validate() throws(LMTPConfigurationError) {
        if hostname.isEmpty || hostname.utf8.count > 64
            || hostname.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F })
        {
            throw LMTPConfigurationError("hostname must be 1-64 printable ASCII characters without spaces, got \"\(hostname)\"")
        }
        if maxMessageSize < 1024 { throw LMTPConfigurationError("max message size must be at least 1024 bytes, got \(maxMessageSize)") }
        if maxRecipients < 1 { throw LMTPConfigurationError("max recipients must be at least 1, got \(maxRecipients)") }
        if maxCommandLineLength < 512 {
            throw LMTPConfigurationError("max command line length must be at least 512 (RFC 5321), got \(maxCommandLineLength)")
        }
        if maxErrors < 1 { throw LMTPConfigurationError("max errors must be at least 1, got \(maxErrors)") }
    }
}

/// A configuration value that a session cannot work with.
public struct LMTPConfigurationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
