/// Limits and identity of one LMTP session. Plain values; the defaults follow the protocol notes.
public struct LMTPConfiguration: Sendable, Hashable {
    /// The name the server announces in its greeting and LHLO reply.
    public var hostname: String
    /// The text after the host name in the `220` greeting (a product name belongs here, if any).
    public var greetingText: String = "LMTP ready"
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
    /// Largest header section accepted, in bytes; a larger one gets `552 5.3.4` per recipient.
    public var maxHeaderBytes: Int
    /// Most header fields accepted; more get `552 5.3.4` per recipient.
    public var maxHeaderFields: Int
    /// When set, message bytes held in memory are handed to the driver (``LMTPSession/Action/spill(_:)``)
    /// whenever this many have accumulated; `nil` keeps whole messages in memory.
    public var spillThreshold: Int?

    public init(
        hostname: String = "localhost",
        maxMessageSize: Int = 50 * 1024 * 1024,
        maxRecipients: Int = 1000,
        maxCommandLineLength: Int = 4096,
        maxErrors: Int = 20,
        xforward: Bool = true,
        maxHeaderBytes: Int = 1024 * 1024,
        maxHeaderFields: Int = 1000,
        spillThreshold: Int? = nil
    ) {
        self.hostname = hostname
        self.maxMessageSize = maxMessageSize
        self.maxRecipients = maxRecipients
        self.maxCommandLineLength = maxCommandLineLength
        self.maxErrors = maxErrors
        self.xforward = xforward
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderFields = maxHeaderFields
        self.spillThreshold = spillThreshold
    }

    /// Checks the values a session relies on; returns a message naming the bad setting.
    public func validate() throws(LMTPConfigurationError) {
        if hostname.isEmpty || hostname.utf8.count > 64
            || hostname.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F })
        {
            throw LMTPConfigurationError(
                "hostname must be 1-64 printable ASCII characters without spaces, got \"\(hostname)\""
            )
        }
        if greetingText.isEmpty || greetingText.utf8.count > 200
            || greetingText.utf8.contains(where: { $0 < 0x20 || $0 >= 0x7F })
        {
            throw LMTPConfigurationError(
                "greeting text must be 1-200 printable ASCII characters, got \"\(greetingText.prefix(60))\""
            )
        }
        if maxMessageSize < 1024 {
            throw LMTPConfigurationError("max message size must be at least 1024 bytes, got \(maxMessageSize)")
        }
        if maxRecipients < 1 { throw LMTPConfigurationError("max recipients must be at least 1, got \(maxRecipients)") }
        if maxCommandLineLength < 512 {
            throw LMTPConfigurationError(
                "max command line length must be at least 512 (RFC 5321), got \(maxCommandLineLength)"
            )
        }
        if maxHeaderBytes < 1024 {
            throw LMTPConfigurationError("max header bytes must be at least 1024, got \(maxHeaderBytes)")
        }
        if maxHeaderFields < 16 {
            throw LMTPConfigurationError("max header fields must be at least 16, got \(maxHeaderFields)")
        }
        if let spillThreshold, spillThreshold < 4096 {
            throw LMTPConfigurationError(
                "the in-memory limit per transaction must be at least 4096 bytes, got \(spillThreshold)"
            )
        }
        if maxErrors < 1 { throw LMTPConfigurationError("max errors must be at least 1, got \(maxErrors)") }
    }
}

/// A configuration value that a session cannot work with.
public struct LMTPConfigurationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
