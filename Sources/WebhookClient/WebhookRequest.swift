/// One HTTP request (POST by default) to a webhook endpoint.
public struct WebhookRequest: Sendable, Hashable {
    /// The endpoint, `http://` or `https://` only.
    public var url: String
    /// `POST`, `PUT` or `PATCH` (the body is sent with each).
    public var method: String
    /// Request headers in order; `Content-Type: application/json` is added when absent.
    public var headers: [WebhookHeader]
    /// The request body, sent as is.
    public var body: [UInt8]
    /// Time allowed to establish the connection (TCP and TLS), in milliseconds.
    public var connectTimeoutMilliseconds: Int
    /// Time allowed for the whole transfer, connection included, in milliseconds.
    public var totalTimeoutMilliseconds: Int
    /// Refuse to connect to private, loopback, link-local and other non-public addresses
    /// (checked on the address curl actually connects to, after DNS; see ``WebhookAddressGuard``).
    public var denyPrivateAddresses = false

    public init(
        url: String,
        method: String = "POST",
        headers: [WebhookHeader] = [],
        body: [UInt8],
        connectTimeoutMilliseconds: Int = 5_000,
        totalTimeoutMilliseconds: Int = 30_000
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.totalTimeoutMilliseconds = totalTimeoutMilliseconds
    }
}

/// One HTTP header line.
public struct WebhookHeader: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// What came back from one POST: an HTTP status, or a transport error when there was none.
public struct WebhookResponse: Sendable, Hashable {
    /// The HTTP status code; `0` when no response was received.
    public var status: Int
    /// The start of the response body (at most ``WebhookClient/snippetLimit`` bytes), as UTF-8 with
    /// invalid bytes replaced; for success rules, logs (shortened) and LMTP reply texts (shortened).
    public var snippet: String
    /// Why no (complete) response was received, if so.
    public var error: WebhookTransportError?
    /// Seconds from a `Retry-After` header (delta-seconds or HTTP-date), if the endpoint sent one.
    public var retryAfterSeconds: Int?
    /// Wall time of the transfer in seconds.
    public var seconds: Double

    public init(
        status: Int,
        snippet: String = "",
        error: WebhookTransportError? = nil,
        retryAfterSeconds: Int? = nil,
        seconds: Double = 0
    ) {
        self.status = status
        self.snippet = snippet
        self.error = error
        self.retryAfterSeconds = retryAfterSeconds
        self.seconds = seconds
    }

    /// `true` for a completed transfer answered 2xx.
    public var isSuccess: Bool { error == nil && (200..<300).contains(status) }

    /// A short human-readable account: `HTTP 503`, `timeout: Operation timed out after 5000 ms`.
    public var summary: String {
        if let error { return "\(error.kind.rawValue): \(error.message)" }
        return "HTTP \(status)"
    }
}

/// A failure below HTTP: no connection, a timeout, a TLS problem, a refused URL.
public struct WebhookTransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Broad classes of transport failure.
    public enum Kind: String, Sendable, Hashable {
        case connect, resolve, timeout, tls
        case refusedURL = "refused-url"
        case refusedAddress = "refused-address"
        case shutdown, other
    }

    public var kind: Kind
    /// The libcurl error code (`CURLE_*`), or 0 when not from curl.
    public var curlCode: Int
    public var message: String

    public init(kind: Kind, curlCode: Int = 0, message: String) {
        self.kind = kind
        self.curlCode = curlCode
        self.message = message
    }

    public var description: String { "\(kind.rawValue) (curl \(curlCode)): \(message)" }
}
