import MailCore
import Spool
import WebhookClient

/// One webhook endpoint: where to POST, how long to wait, how to sign, what to put in the payload.
public struct WebhookEndpoint: Sendable {
    public var url: String
    public var connectTimeoutMilliseconds: Int
    public var totalTimeoutMilliseconds: Int
    /// Static headers (e.g. `Authorization: Bearer …`).
    public var headers: [WebhookHeader]
    /// Attachment contents and raw message in the payload.
    public var payload: PayloadOptions
    /// Standard Webhooks signing secrets (none: unsigned, but `webhook-id`/`webhook-timestamp` are sent).
    public var signer: WebhookSigner

    public init(
        url: String, connectTimeoutMilliseconds: Int = 5_000, totalTimeoutMilliseconds: Int = 30_000, headers: [WebhookHeader] = [],
        payload: PayloadOptions = PayloadOptions(), signer: WebhookSigner = try! WebhookSigner(secrets: [])
    ) {
        self.url = url
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.totalTimeoutMilliseconds = totalTimeoutMilliseconds
        self.headers = headers
        self.payload = payload
        self.signer = signer
    }

    /// A signed request for one attempt (a fresh `webhook-timestamp` each time, the same id).
    public func request(webhookID: String, body: [UInt8], to url: String? = nil, nowMilliseconds: Int64 = UnixTime.now().milliseconds) -> WebhookRequest {
        var headers = self.headers
        headers += signer.headers(id: webhookID, timestamp: nowMilliseconds / 1000, body: body)
        headers.append(WebhookHeader("Idempotency-Key", webhookID))
        return WebhookRequest(
            url: url ?? self.url, headers: headers, body: body,
            connectTimeoutMilliseconds: connectTimeoutMilliseconds, totalTimeoutMilliseconds: totalTimeoutMilliseconds)
    }

    /// Renders the payload of a spooled message (same id and `received_at` as the first attempt).
    public func body(for metadata: SpoolMetadata, raw: [UInt8]) -> [UInt8] {
        let envelope = MailEnvelope(
            mailFrom: metadata.mailFrom, rcptTo: metadata.rcptTo, lhlo: metadata.lhlo, smtpUTF8: metadata.smtpUTF8, body: metadata.body,
            client: .init(
                name: metadata.client["name"], addr: metadata.client["addr"], port: metadata.client["port"], proto: metadata.client["proto"],
                helo: metadata.client["helo"], ident: metadata.client["ident"], source: metadata.client["source"]))
        return MessagePayload.render(
            id: metadata.webhookID, receivedAt: UnixTime(milliseconds: metadata.receivedAtMilliseconds), envelope: envelope, raw: raw,
            options: payload
        ).json
    }
}

/// How a webhook answer is treated.
public enum DeliveryOutcome: Sendable, Hashable {
    case delivered
    /// Worth retrying: timeouts, connection/TLS/DNS errors, 408, 425, 429, 5xx.
    case transient(reason: String)
    /// Will not get better: other 4xx and 3xx (redirects are never followed); the reply to use.
    case permanent(code: Int, enhancedCode: String, reason: String)

    public static func classify(_ response: WebhookResponse) -> DeliveryOutcome {
        if let error = response.error { return .transient(reason: "\(error.kind.rawValue): \(error.message)") }
        let status = response.status
        let snippet = String(response.snippet.prefix(80)).map { $0.isNewline ? " " : $0 }
        let detail = snippet.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(String(snippet))"
        switch status {
        case 200..<300: return .delivered
        case 408, 425, 429, 500..<600, 100..<200: return .transient(reason: detail)
        case 300..<400: return .permanent(code: 550, enhancedCode: "5.4.0", reason: "webhook redirected (\(detail)); redirects are not followed")
        case 404, 410: return .permanent(code: 550, enhancedCode: "5.1.1", reason: "webhook rejected the recipient (\(detail))")
        case 413: return .permanent(code: 552, enhancedCode: "5.3.4", reason: "webhook says message too big (\(detail))")
        case 400, 422: return .permanent(code: 554, enhancedCode: "5.6.0", reason: "webhook rejected the content (\(detail))")
        case 401, 403: return .permanent(code: 550, enhancedCode: "5.7.1", reason: "webhook refused (\(detail))")
        default: return .permanent(code: 550, enhancedCode: "5.0.0", reason: "webhook rejected (\(detail))")
        }
    }
}
