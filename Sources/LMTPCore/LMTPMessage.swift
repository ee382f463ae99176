/// An accepted recipient: the mailbox from `RCPT TO:` and the `ORCPT=` original recipient, if sent.
public struct LMTPRecipient: Sendable, Hashable {
    public var mailbox: LMTPMailbox
    /// The RFC 3461 `ORCPT` value as sent (`rfc822;bob@example.com`), if any.
    public var originalRecipient: String?

    public init(mailbox: LMTPMailbox, originalRecipient: String? = nil) {
        self.mailbox = mailbox
        self.originalRecipient = originalRecipient
    }
}

/// The `BODY=` parameter of MAIL (RFC 6152).
public enum LMTPBodyType: String, Sendable, Hashable {
    case sevenBit = "7BIT"
    case eightBitMIME = "8BITMIME"
}

/// A complete mail transaction after the final dot: the envelope and the message bytes.
public struct LMTPMessage: Sendable {
    /// The name the client gave in `LHLO`.
    public var lhloName: String
    /// The reverse-path of `MAIL FROM:`; `.null` for bounces.
    public var sender: LMTPReversePath
    /// The `SIZE=` the client declared, if any (an estimate; never enforced against the real size).
    public var declaredSize: Int?
    /// The `BODY=` the client declared, if any.
    public var bodyType: LMTPBodyType?
    /// Whether the client declared `SMTPUTF8`.
    public var smtpUTF8: Bool
    /// The accepted recipients, in RCPT order, duplicates included. The handler returns a result
    /// for each (``LMTPRecipientResults``); the replies go out in this order.
    public var recipients: [LMTPRecipient]
    /// Client data from XFORWARD (empty when the MTA sent none).
    public var client: LMTPClientInfo
    /// The message exactly as received after dot-unstuffing: header and body, line ends as sent.
    /// (From ``LMTPSession`` with a spill threshold: only the bytes after the first `spilledBytes`.)
    public var data: [UInt8]
    /// How many bytes before `data` the session handed to the driver with `.spill`; `0` for a
    /// message held whole in memory, and always `0` in what the `LMTPServer` library gives its handler.
    public var spilledBytes: Int

    public init(
        lhloName: String,
        sender: LMTPReversePath,
        declaredSize: Int? = nil,
        bodyType: LMTPBodyType? = nil,
        smtpUTF8: Bool = false,
        recipients: [LMTPRecipient],
        client: LMTPClientInfo = LMTPClientInfo(),
        data: [UInt8],
        spilledBytes: Int = 0
    ) {
        self.lhloName = lhloName
        self.sender = sender
        self.declaredSize = declaredSize
        self.bodyType = bodyType
        self.smtpUTF8 = smtpUTF8
        self.recipients = recipients
        self.client = client
        self.data = data
        self.spilledBytes = spilledBytes
    }
}

/// The outcome for one recipient after the final dot; the session renders it as
/// `code enhanced-code <recipient> text`.
public struct LMTPRecipientResult: Sendable, Hashable {
    public var code: Int
    public var enhancedCode: String
    public var text: String

    public init(code: Int, enhancedCode: String, text: String) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.text = text
    }

    /// `250 2.0.0 <rcpt> text`: the recipient is the server's responsibility now.
    public static func delivered(_ text: String = "Delivered") -> Self {
        .init(code: 250, enhancedCode: "2.0.0", text: text)
    }
    /// `451 4.3.0 <rcpt> text`: the MTA keeps the message and retries.
    public static func temporaryFailure(_ text: String = "Temporary failure, try again later") -> Self {
        .init(code: 451, enhancedCode: "4.3.0", text: text)
    }
    /// `550 5.0.0 <rcpt> text`: the MTA bounces the message to its sender.
    public static func permanentFailure(_ text: String = "Rejected") -> Self {
        .init(code: 550, enhancedCode: "5.0.0", text: text)
    }
}

/// What the policy hook decides about a MAIL or RCPT.
public enum LMTPPolicyDecision: Sendable, Hashable {
    /// Answer with the standard `250` reply.
    case accept
    /// Answer with this reply instead (4xx or 5xx; a 2xx reply counts as acceptance).
    case reply(LMTPReply)
}
