import LMTPCore

/// Drives an `LMTPSession` the way the NIO shell does, with a rule-based policy and handler,
/// and records every reply and delivered message. No sockets, no clocks.
struct SessionHarness {
    var session: LMTPSession
    var replies: [LMTPReply] = []
    var delivered: [LMTPMessage] = []
    /// Bytes handed out with `.spill` for the message in DATA (the driver's file), and how many spills.
    var spilled: [UInt8] = []
    var spills = 0
    /// Messages as delivered, spilled bytes put back in front.
    var messages: [[UInt8]] = []
    var closed = false

    init(configuration: LMTPConfiguration = LMTPConfiguration(hostname: "lmtp.test")) {
        session = LMTPSession(configuration: configuration)
    }

    /// Senders whose local part starts with "blocked" get 550 5.7.1.
    static func senderDecision(_ sender: LMTPReversePath) -> LMTPPolicyDecision {
        if case .mailbox(let box) = sender, box.localPart.hasPrefix("blocked") {
            return .reply(LMTPReply(550, "5.7.1", "Sender blocked"))
        }
        return .accept
    }

    /// Recipients "reject*" get 550 5.1.1, "temp*" 450 4.2.1.
    static func recipientDecision(_ recipient: LMTPRecipient) -> LMTPPolicyDecision {
        let local = recipient.mailbox.localPart
        if local.hasPrefix("reject") { return .reply(LMTPReply(550, "5.1.1", "<\(recipient.mailbox)> User unknown")) }
        if local.hasPrefix("temp") { return .reply(LMTPReply(450, "4.2.1", "Try later")) }
        return .accept
    }

    /// "fail*" → 451 4.3.0, "bounce*" → 550 5.0.0, anything else → 250.
    static func result(for recipient: LMTPRecipient) -> LMTPRecipientResult {
        let local = recipient.mailbox.localPart
        if local.hasPrefix("fail") { return .temporaryFailure("Webhook down") }
        if local.hasPrefix("bounce") { return .permanentFailure("Webhook said no") }
        return .delivered("Delivered id=T1")
    }

    mutating func feed(_ text: String) { feed(Array(text.utf8)) }

    mutating func feed(_ bytes: [UInt8]) {
        session.receive(bytes)
        drain()
    }

    mutating func endOfInput() {
        session.receiveEndOfInput()
        drain()
    }

    mutating func drain() {
        loop: while true {
            let action = session.nextAction()
            switch action {
            case .spill, .deliver: break
            default: if !session.isReceivingData { spilled = [] }  // a transaction ended without a message
            }
            switch action {
            case .spill(let bytes):
                spilled += bytes
                spills += 1
            case .send(let reply): replies.append(reply)
            case .checkSender(let sender): session.resolveSender(Self.senderDecision(sender))
            case .checkRecipient(let recipient): session.resolveRecipient(Self.recipientDecision(recipient))
            case .deliver(let message):
                delivered.append(message)
                messages.append(spilled + message.data)
                spilled = []
                session.finishDelivery(LMTPRecipientResults(message.recipients, Self.result(for:)))
            case .needInput: break loop
            case .close:
                closed = true
                break loop
            }
        }
    }

    /// Each reply summarised as `code enhanced text-of-last-line`.
    var summary: [String] {
        replies.map { reply in
            [String(reply.code), reply.enhancedCode, reply.lines.last].compactMap { $0 }.filter { !$0.isEmpty }.joined(
                separator: " "
            )
        }
    }
}
