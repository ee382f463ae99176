import MailCore
import Targets

/// Feeds one arbitrary message into the MIME parser, the payload v1 encoder and a chat renderer,
/// and traps unless the payload is valid JSON that carries the raw bytes intact.
package enum MessageParserFuzzer {
    /// Runs one input; traps (a finding) when an invariant does not hold.
    package static func run(_ input: UnsafeBufferPointer<UInt8>) {
        let raw = Array(input)
        let envelope = MailEnvelope(mailFrom: "a@fuzz.test", rcptTo: ["b@fuzz.test"], lhlo: "fuzz")
        let options = PayloadOptions(attachments: .inline(maxBytes: 256), includeRaw: true)
        let (json, message) = MessagePayload.render(
            id: "fuzz",
            receivedAt: UnixTime(milliseconds: 0),
            envelope: envelope,
            raw: raw,
            options: options
        )
        var validator = JSONValidator(json)
        precondition(validator.validate(), "payload is not valid JSON at byte \(validator.index)")
        precondition(json.count >= raw.count * 4 / 3, "the raw message is missing from the payload")
        let summary = MailSummary(id: "fuzz", message: message, envelope: envelope)
        let slack = SlackFormat.render(summary)
        var slackValidator = JSONValidator(slack.bytes)
        precondition(slackValidator.validate(), "Slack body is not valid JSON at byte \(slackValidator.index)")
    }
}
