import LMTPCore

/// Decides about MAIL and RCPT before they are answered (the Ruby library's `headers` callback).
/// A missing hook accepts. Only syntactically valid commands reach the hooks.
public struct LMTPPolicy: Sendable {
    /// Called for each valid `MAIL FROM`.
    public var sender: (@Sendable (LMTPReversePath) async -> LMTPPolicyDecision)?
    /// Called for each valid `RCPT TO` (after the recipient limit is checked).
    public var recipient: (@Sendable (LMTPRecipient) async -> LMTPPolicyDecision)?

    public init(
        sender: (@Sendable (LMTPReversePath) async -> LMTPPolicyDecision)? = nil,
        recipient: (@Sendable (LMTPRecipient) async -> LMTPPolicyDecision)? = nil
    ) {
        self.sender = sender
        self.recipient = recipient
    }

    /// Accepts every valid sender and recipient.
    public static let acceptAll = LMTPPolicy()
}
