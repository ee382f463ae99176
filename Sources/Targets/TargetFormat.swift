import MailCore
import MessageData

/// The body formats lmtphook can send: payload v1 for generic receivers, the native formats of
/// chat apps, and Mustache templates for anything else (ticketing APIs).
package enum TargetFormat: String, Sendable, Hashable, CaseIterable {
    case json, slack, discord, mattermost, teams, zulip, rocketchat, ntfy, gotify, matrix, template

    /// What a 2xx from this target must also show before the message counts as delivered.
    package var defaultSuccessRule: SuccessRule {
        switch self {
        case .slack: return SuccessRule(body: "ok")  // Slack answers 200 "ok"; anything else is an error text
        case .discord, .ntfy, .gotify: return SuccessRule(jsonField: "id")  // the saved message's id
        default: return SuccessRule()
        }
    }

    /// Renders one delivery.
    package func render(_ input: RenderInput, options: FormatOptions) throws(TemplateError) -> RenderedBody {
        switch self {
        case .json: return RenderedBody(contentType: "application/json", bytes: input.payloadJSON)
        case .slack: return SlackFormat.render(input.summary)
        case .discord: return DiscordFormat.render(input.summary, options: options)
        case .mattermost: return MattermostFormat.render(input.summary, options: options)
        case .teams: return TeamsFormat.render(input.summary)
        case .zulip: return ZulipFormat.render(input.summary, options: options)
        case .rocketchat: return RocketChatFormat.render(input.summary, options: options)
        case .ntfy: return NtfyFormat.render(input.summary, options: options)
        case .gotify: return GotifyFormat.render(input.summary, options: options)
        case .matrix: return MatrixFormat.render(input.summary, options: options)
        case .template:
            guard let template = options.template else {
                throw TemplateError(message: "format 'template' needs a template")
            }
            return try template.render(input)
        }
    }
}

/// Per-endpoint settings of a format.
package struct FormatOptions: Sendable {
    /// Display name where the target lets a webhook set one (Discord, Mattermost, Rocket.Chat, Matrix).
    package var username: String?
    /// Channel override (Mattermost, Rocket.Chat), if the integration allows it.
    package var channel: String?
    /// Zulip: the stream (channel) to post to.
    package var stream: String?
    /// ntfy: the topic.
    package var topic: String?
    /// ntfy (1–5) or Gotify (0–10) priority.
    package var priority: Int?
    /// The template of format `template`.
    package var template: MessageTemplate?

    package init(
        username: String? = nil,
        channel: String? = nil,
        stream: String? = nil,
        topic: String? = nil,
        priority: Int? = nil,
        template: MessageTemplate? = nil
    ) {
        self.username = username
        self.channel = channel
        self.stream = stream
        self.topic = topic
        self.priority = priority
        self.template = template
    }
}

/// Everything a format may use to render one delivery.
package struct RenderInput: Sendable {
    package var summary: MailSummary
    package var message: ParsedMessage
    package var envelope: MailEnvelope
    /// The payload v1 document of this delivery.
    package var payloadJSON: [UInt8]
    package var receivedAt: UnixTime

    package init(
        summary: MailSummary,
        message: ParsedMessage,
        envelope: MailEnvelope,
        payloadJSON: [UInt8],
        receivedAt: UnixTime
    ) {
        self.summary = summary
        self.message = message
        self.envelope = envelope
        self.payloadJSON = payloadJSON
        self.receivedAt = receivedAt
    }
}

/// A request body and its media type.
package struct RenderedBody: Sendable {
    package var contentType: String
    /// The body; a JSON payload of a message held in a file streams `raw_base64` from it.
    package var body: RequestBody

    package init(contentType: String, bytes: [UInt8]) {
        self.contentType = contentType
        self.body = RequestBody(bytes: bytes)
    }

    package init(contentType: String, body: RequestBody) {
        self.contentType = contentType
        self.body = body
    }

    /// The whole body in memory: a streamed body is read from its file (blocking; for showing
    /// a rendered body, never on the delivery path). Empty when the file cannot be read.
    package var bytes: [UInt8] { body.inMemory ?? (try? body.contents()) ?? [] }

    /// A JSON object whose members `build` writes.
    static func json(_ build: (inout JSONWriter) -> Void) -> RenderedBody {
        var writer = JSONWriter()
        writer.beginObject()
        build(&writer)
        writer.endObject()
        return RenderedBody(contentType: "application/json", bytes: writer.bytes)
    }
}

extension JSONWriter {
    mutating func field(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    mutating func field(_ name: String, _ value: Int) {
        key(name)
        int(value)
    }

    mutating func field(_ name: String, _ value: Bool) {
        key(name)
        bool(value)
    }

    mutating func object(_ name: String? = nil, _ build: (inout JSONWriter) -> Void) {
        if let name { key(name) }
        beginObject()
        build(&self)
        endObject()
    }

    mutating func array(_ name: String? = nil, _ build: (inout JSONWriter) -> Void) {
        if let name { key(name) }
        beginArray()
        build(&self)
        endArray()
    }
}
