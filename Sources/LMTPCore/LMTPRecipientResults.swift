/// A handler's answer for one message: a result per recipient, looked up by recipient — never by
/// position, so a result cannot reach the wrong recipient. A recipient given twice (RCPT
/// duplicates are allowed) is the same recipient and gets the same result; a recipient without
/// a result gets `451 4.3.0` (the MTA keeps the message), and the reply says so.
///
/// ```swift
/// return LMTPRecipientResults(message.recipients) { recipient in
///     recipient.mailbox.domain == "example.com" ? .delivered() : .permanentFailure("No such domain")
/// }
/// ```
public struct LMTPRecipientResults: Sendable, Hashable {
    private var results: [LMTPRecipient: LMTPRecipientResult] = [:]
    private var fallback: LMTPRecipientResult?

    /// No results yet: set them with the subscript.
    public init() {}

    /// The same result for every recipient.
    public init(all result: LMTPRecipientResult) { fallback = result }

    /// `result(recipient)` for each of `recipients`.
    public init(
        _ recipients: [LMTPRecipient],
        _ result: (LMTPRecipient) throws -> LMTPRecipientResult
    ) rethrows {
        for recipient in recipients where results[recipient] == nil { results[recipient] = try result(recipient) }
    }

    /// The result for `recipient` (`nil` when none was given).
    public subscript(recipient: LMTPRecipient) -> LMTPRecipientResult? {
        get { results[recipient] ?? fallback }
        set { results[recipient] = newValue }
    }

    /// The result a recipient gets when the handler gave none.
    public static let missing = LMTPRecipientResult.temporaryFailure("Internal error: no result for this recipient")
}
