import MessageData

/// One HTTP request (POST by default) to a webhook endpoint.
package struct WebhookRequest: Sendable {
    /// The endpoint, `http://` or `https://` only.
    package var url: String
    /// `POST`, `PUT` or `PATCH` (the body is sent with each).
    package var method: String
    /// Request headers in order; `Content-Type: application/json` is added when absent.
    package var headers: [WebhookHeader]
    /// The request body, sent as is; parts read from a message file are streamed while it is sent.
    package var body: RequestBody
    /// Time allowed to establish the connection (TCP and TLS), in milliseconds.
    package var connectTimeoutMilliseconds: Int
    /// Time allowed for the whole transfer, connection included, in milliseconds.
    package var totalTimeoutMilliseconds: Int
    /// Sign the body while the request is prepared (a body streamed from a file: the client reads
    /// it on its thread); `nil` when the headers carry the signature already or none is wanted.
    package var signing: WebhookSigning?
    /// Refuse to connect to private, loopback, link-local and other non-package addresses
    /// (checked on the address curl actually connects to, after DNS; see ``WebhookAddressGuard``).
    package var denyPrivateAddresses = false

    package init(
        url: String,
        method: String = "POST",
        headers: [WebhookHeader] = [],
        body: RequestBody,
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

    /// A request with a body in memory.
    package init(
        url: String,
        method: String = "POST",
        headers: [WebhookHeader] = [],
        body: [UInt8],
        connectTimeoutMilliseconds: Int = 5_000,
        totalTimeoutMilliseconds: Int = 30_000
    ) {
        self.init(
            url: url,
            method: method,
            headers: headers,
            body: RequestBody(bytes: body),
            connectTimeoutMilliseconds: connectTimeoutMilliseconds,
            totalTimeoutMilliseconds: totalTimeoutMilliseconds
        )
    }
}

/// One HTTP header line.
package struct WebhookHeader: Sendable, Hashable {
    package var name: String
    package var value: String

    package init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// What came back from one POST: an HTTP status, or a transport error when there was none.
package struct WebhookResponse: Sendable, Hashable {
    /// The HTTP status code; `0` when no response was received.
    package var status: Int
    /// The start of the response body (at most ``WebhookClient/snippetLimit`` bytes), as UTF-8 with
    /// invalid bytes replaced; for success rules, logs (shortened) and LMTP reply texts (shortened).
    package var snippet: String
    /// Why no (complete) response was received, if so.
    package var error: WebhookTransportError?
    /// Seconds from a `Retry-After` header (delta-seconds or HTTP-date), if the endpoint sent one.
    package var retryAfterSeconds: Int?
    /// Wall time of the transfer in seconds.
    package var seconds: Double

    package init(
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
    package var isSuccess: Bool { error == nil && (200..<300).contains(status) }

    /// A short human-readable account: `HTTP 503`, `timeout: Operation timed out after 5000 ms`.
    package var summary: String {
        if let error { return "\(error.kind.rawValue): \(error.message)" }
        return "HTTP \(status)"
    }
}

/// A failure below HTTP: no connection, a timeout, a TLS problem, a refused URL.
package struct WebhookTransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Broad classes of transport failure.
    package enum Kind: String, Sendable, Hashable {
        case connect, resolve, timeout, tls
        case refusedURL = "refused-url"
        case refusedAddress = "refused-address"
        case shutdown, other
    }

    package var kind: Kind
    /// The libcurl error code (`CURLE_*`), or 0 when not from curl.
    package var curlCode: Int
    package var message: String

    package init(kind: Kind, curlCode: Int = 0, message: String) {
        self.kind = kind
        self.curlCode = curlCode
        self.message = message
    }

    package var description: String { "\(kind.rawValue) (curl \(curlCode)): \(message)" }
}

/// A Standard Webhooks signature still to be computed over the request body.
package struct WebhookSigning: Sendable {
    package var signer: WebhookSigner
    package var id: String
    package var timestamp: Int64

    package init(signer: WebhookSigner, id: String, timestamp: Int64) {
        self.signer = signer
        self.id = id
        self.timestamp = timestamp
    }
}
