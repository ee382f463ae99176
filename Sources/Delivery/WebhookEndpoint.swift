import MailCore
import MessageData
import Spool
import Targets
import WebhookClient

/// One webhook endpoint: where to send, in which format, how long to wait, how to sign, what to
/// put in the payload, how fast, and what counts as success.
package struct WebhookEndpoint: Sendable {
    /// The name routes refer to (and spool entries record).
    package var name: String
    package var url: String
    /// `POST` (default), `PUT` or `PATCH`.
    package var method: String
    package var connectTimeoutMilliseconds: Int
    package var totalTimeoutMilliseconds: Int
    /// Static headers (e.g. `Authorization: Bearer …`).
    package var headers: [WebhookHeader]
    /// Attachment contents and raw message in the payload.
    package var payload: PayloadOptions
    /// Standard Webhooks signing secrets (none: unsigned, but `webhook-id`/`webhook-timestamp` are sent).
    package var signer: WebhookSigner
    /// The body format (payload v1, a chat app's, or a template).
    package var format: TargetFormat
    package var formatOptions: FormatOptions
    /// What a 2xx must also show to count as delivered.
    package var successRule: SuccessRule
    /// Requests per period at most, if limited.
    package var rateLimit: RateLimit?
    /// The sync budget of this endpoint (default: the relay's).
    package var syncBudget: Duration?
    /// Requests to this endpoint in flight at most (sync attempts, late attempts and retries
    /// together); beyond it a message is queued at once. `nil`: the relay's default, which leaves
    /// a quarter of the request slots (`delivery.threads`) to other endpoints.
    package var maxInFlight: Int?
    /// Refuse private, loopback and link-local addresses (set from `access.private_webhooks: deny`).
    package var denyPrivateAddresses = false

    package init(
        name: String = "default",
        url: String,
        method: String = "POST",
        connectTimeoutMilliseconds: Int = 5_000,
        totalTimeoutMilliseconds: Int = 30_000,
        headers: [WebhookHeader] = [],
        payload: PayloadOptions = PayloadOptions(),
        signer: WebhookSigner = try! WebhookSigner(secrets: []),
        format: TargetFormat = .json,
        formatOptions: FormatOptions = FormatOptions(),
        successRule: SuccessRule? = nil,
        rateLimit: RateLimit? = nil,
        syncBudget: Duration? = nil
    ) {
        self.name = name
        self.url = url
        self.method = method
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.totalTimeoutMilliseconds = totalTimeoutMilliseconds
        self.headers = headers
        self.payload = payload
        self.signer = signer
        self.format = format
        self.formatOptions = formatOptions
        self.successRule = successRule ?? format.defaultSuccessRule
        self.rateLimit = rateLimit
        self.syncBudget = syncBudget
    }

    /// A signed request for one attempt (a fresh `webhook-timestamp` each time, the same id).
    /// A body streamed from a file is signed by the client while it prepares the request (the
    /// signature needs a pass over the file: not on the caller's thread).
    package func request(
        webhookID: String,
        body: RenderedBody,
        nowMilliseconds: Int64 = UnixTime.now().milliseconds
    ) -> WebhookRequest {
        var headers = self.headers
        if !headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            headers.append(WebhookHeader("Content-Type", body.contentType))
        }
        var signing: WebhookSigning? = nil
        if let bytes = body.body.inMemory {
            headers += signer.headers(id: webhookID, timestamp: nowMilliseconds / 1000, body: bytes)
        } else {
            headers += [
                WebhookHeader("webhook-id", webhookID),
                WebhookHeader("webhook-timestamp", String(nowMilliseconds / 1000)),
            ]
            if signer.isEnabled {
                signing = WebhookSigning(signer: signer, id: webhookID, timestamp: nowMilliseconds / 1000)
            }
        }
        headers.append(WebhookHeader("Idempotency-Key", webhookID))
        var request = WebhookRequest(
            url: url,
            method: method,
            headers: headers,
            body: body.body,
            connectTimeoutMilliseconds: connectTimeoutMilliseconds,
            totalTimeoutMilliseconds: totalTimeoutMilliseconds
        )
        request.signing = signing
        request.denyPrivateAddresses = denyPrivateAddresses
        return request
    }

    /// Renders the body of one delivery from a message in memory: payload v1, then the
    /// endpoint's format from it.
    package func render(
        webhookID: String,
        receivedAt: UnixTime,
        envelope: MailEnvelope,
        raw: [UInt8],
        tags: [String] = [],
        route: String? = nil
    ) throws -> (body: RenderedBody, message: ParsedMessage) {
        try render(
            webhookID: webhookID,
            receivedAt: receivedAt,
            envelope: envelope,
            body: .bytes(raw),
            parsed: nil,
            tags: tags,
            route: route
        )
    }

    /// Renders the body of one delivery: payload v1 (with `raw_base64` streamed from a message
    /// file), then the endpoint's format from it. `parsed`: the message parsed once for all its
    /// endpoints; else it is parsed here (a file body is read whole for that: blocking).
    package func render(
        webhookID: String,
        receivedAt: UnixTime,
        envelope: MailEnvelope,
        body: MessageBody,
        parsed: ParsedMessage?,
        tags: [String] = [],
        route: String? = nil
    ) throws -> (body: RenderedBody, message: ParsedMessage) {
        let message: ParsedMessage
        if let parsed {
            message = parsed.shown(with: payload)
        } else {
            let limit = MessagePayload.inlineLimit(for: [payload])
            message = ParsedMessage(parsing: try body.contents(), inlineAttachmentLimit: limit).shown(with: payload)
        }
        let document = MessagePayload.document(
            id: webhookID,
            receivedAt: receivedAt,
            envelope: envelope,
            body: body,
            message: message,
            options: payload
        )
        if format == .json {
            return (RenderedBody(contentType: "application/json", body: document), message)
        }
        let summary = MailSummary(
            id: webhookID,
            message: message,
            envelope: envelope,
            tags: tags,
            route: route
        )
        let input = RenderInput(
            summary: summary,
            message: message,
            envelope: envelope,
            // Only templates show the payload (`{{payload}}`): read from the file for them alone.
            payloadJSON: format == .template ? try document.contents() : (document.inMemory ?? []),
            receivedAt: receivedAt
        )
        return (try format.render(input, options: formatOptions), message)
    }

    /// Renders a spooled message again, for a retry or a replay: same id and `received_at` as
    /// the first attempt, tags from its recipients.
    package func render(
        spooled metadata: SpoolMetadata,
        body: MessageBody,
        delimiters: Set<Character>
    ) throws -> RenderedBody {
        let envelope = Self.envelope(of: metadata)
        return try render(
            webhookID: metadata.webhookID,
            receivedAt: UnixTime(milliseconds: metadata.receivedAtMilliseconds),
            envelope: envelope,
            body: body,
            parsed: nil,
            tags: DeliveryEngine.tags(envelope.rcptTo, delimiters: delimiters)
        ).body
    }

    /// The envelope of a spooled message.
    package static func envelope(of metadata: SpoolMetadata) -> MailEnvelope {
        MailEnvelope(
            mailFrom: metadata.mailFrom,
            rcptTo: metadata.rcptTo,
            lhlo: metadata.lhlo,
            smtpUTF8: metadata.smtpUTF8,
            body: metadata.body,
            client: .init(
                name: metadata.client["name"],
                addr: metadata.client["addr"],
                port: metadata.client["port"],
                proto: metadata.client["proto"],
                helo: metadata.client["helo"],
                ident: metadata.client["ident"],
                source: metadata.client["source"]
            )
        )
    }
}
