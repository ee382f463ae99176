import LMTPCore
import Logging
import MailCore
import WebhookClient

/// Delivers each message as one JSON document to the webhook and turns the outcome into one LMTP
/// result per recipient: 2xx → `250 2.0.0`; anything else (status, timeout, refused) → `451 4.3.0`,
/// so the MTA keeps the message and retries. (The durable spool and retry policy come later.)
public struct WebhookDelivery: Sendable {
    /// Where and how to POST.
    public struct Endpoint: Sendable, Hashable {
        public var url: String
        public var connectTimeoutMilliseconds: Int
        public var totalTimeoutMilliseconds: Int
        public var headers: [WebhookHeader]
        /// Attachment contents and raw message in the payload.
        public var payload: PayloadOptions

        public init(
            url: String, connectTimeoutMilliseconds: Int = 5_000, totalTimeoutMilliseconds: Int = 30_000, headers: [WebhookHeader] = [],
            payload: PayloadOptions = PayloadOptions()
        ) {
            self.url = url
            self.payload = payload
            self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
            self.totalTimeoutMilliseconds = totalTimeoutMilliseconds
            self.headers = headers
        }
    }

    public let endpoint: Endpoint
    private let client: WebhookClient
    private let logger: Logger

    public init(endpoint: Endpoint, client: WebhookClient, logger: Logger) {
        self.endpoint = endpoint
        self.client = client
        self.logger = logger
    }

    /// Maps an LMTP transaction to the protocol-independent envelope of the payload.
    public static func envelope(of message: LMTPMessage) -> MailEnvelope {
        var seen = Set<String>()
        let recipients = message.recipients.map(\.mailbox.address).filter { seen.insert($0).inserted }
        let client = message.client
        return MailEnvelope(
            mailFrom: message.sender.address, rcptTo: recipients, lhlo: message.lhloName, smtpUTF8: message.smtpUTF8,
            body: message.bodyType?.rawValue,
            client: .init(name: client.name, addr: client.address, port: client.port, proto: client.proto, helo: client.helo, ident: client.ident, source: client.source)
        )
    }

    /// POSTs the message once and answers every recipient from the outcome.
    public func deliver(_ message: LMTPMessage) async -> [LMTPRecipientResult] {
        let started = ContinuousClock.now
        let envelope = Self.envelope(of: message)
        let id = MessagePayload.id(raw: message.data, recipients: envelope.rcptTo, endpoint: endpoint.url)
        let rendered = MessagePayload.render(id: id, receivedAt: .now(), envelope: envelope, raw: message.data, options: endpoint.payload)
        if !rendered.message.problems.isEmpty {
            logger.debug("message parsed with problems", metadata: ["id": "\(id)", "problems": "\(rendered.message.problems.joined(separator: "; "))"])
        }
        var headers = endpoint.headers
        headers.append(WebhookHeader("Idempotency-Key", id))
        let request = WebhookRequest(
            url: endpoint.url, headers: headers, body: rendered.json,
            connectTimeoutMilliseconds: endpoint.connectTimeoutMilliseconds, totalTimeoutMilliseconds: endpoint.totalTimeoutMilliseconds)
        let response = await client.post(request)
        let results: [LMTPRecipientResult]
        let outcome: String
        if response.isSuccess {
            outcome = "delivered"
            results = message.recipients.map { _ in .delivered("delivered id=\(id)") }
        } else {
            outcome = "deferred"
            let reason = Self.shorten(response.summary, to: 120)
            results = message.recipients.map { _ in .temporaryFailure("webhook failed (\(reason)) id=\(id)") }
            logger.warning("webhook failed", metadata: ["id": "\(id)", "reason": "\(response.summary)", "snippet": "\(Self.shorten(response.snippet, to: 200))"])
        }
        let httpStatus = response.status
        let delay = ContinuousClock.now - started
        let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
        for recipient in message.recipients {
            logger.info("delivery", metadata: [
                "id": "\(id)", "queue_id": "\(message.client.ident ?? "-")", "rcpt": "\(recipient.mailbox.address)",
                "status": "\(outcome)", "http": "\(httpStatus)", "size": "\(message.data.count)",
                "delay": "\((seconds * 1000).rounded() / 1000)",
            ])
        }
        return results
    }

    static func shorten(_ text: String, to limit: Int) -> String {
        let clean = String(text.map { $0.isNewline || $0 == "\r" ? " " : $0 })
        return clean.count <= limit ? clean : String(clean.prefix(limit)) + "…"
    }
}
