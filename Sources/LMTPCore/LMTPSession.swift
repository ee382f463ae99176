/// The LMTP server side of one connection (RFC 2033) as a pure state machine: bytes in, actions out.
///
/// The driver feeds received bytes with ``receive(_:)`` and then calls ``nextAction()`` until it
/// returns ``Action/needInput`` (flush everything written so far, then read) or ``Action/close``.
/// ``Action/checkSender(_:)`` and ``Action/checkRecipient(_:)`` must be answered with
/// ``resolveSender(_:)`` / ``resolveRecipient(_:)``, ``Action/deliver(_:)`` with ``finishDelivery(_:)``,
/// before the next call. Commands are handled strictly in order and unread bytes are kept across
/// `354`, the final dot and every reply, so pipelined groups work.
public struct LMTPSession: Sendable {
    /// What the driver must do next.
    public enum Action: Sendable {
        /// Write this reply (the driver may batch writes until `.needInput`, `.deliver` or `.close`).
        case send(LMTPReply)
        /// Ask the policy about `MAIL FROM`; answer with ``resolveSender(_:)``.
        case checkSender(LMTPReversePath)
        /// Ask the policy about `RCPT TO`; answer with ``resolveRecipient(_:)``.
        case checkRecipient(LMTPRecipient)
        /// Deliver the message; answer with ``finishDelivery(_:)``, one result per recipient. When
        /// the message was spilled, `data` holds only the bytes after the spilled ones
        /// (``LMTPMessage/spilledBytes``).
        case deliver(LMTPMessage)
        /// Only with ``LMTPConfiguration/spillThreshold``: append these message bytes to the
        /// transaction's file before the next call. The file belongs to the transaction in DATA:
        /// once ``isReceivingData`` is `false` without a ``deliver(_:)``, the driver deletes it.
        case spill([UInt8])
        /// Flush pending writes and wait for more bytes.
        case needInput
        /// Flush pending writes and close the connection.
        case close
    }

    private enum Phase: Sendable {
        case beforeLHLO
        case ready
        case data(LMTPDataDecoder)
        case awaitingSender(LMTPReversePath, Envelope)
        case awaitingRecipient(LMTPRecipient)
        case awaitingDelivery([LMTPRecipient])
        case closed
    }

    /// The transaction being built between MAIL and the final dot.
    private struct Envelope: Sendable {
        var sender: LMTPReversePath
        var declaredSize: Int?
        var bodyType: LMTPBodyType?
        var smtpUTF8: Bool
        var recipients: [LMTPRecipient] = []
    }

    public let configuration: LMTPConfiguration
    private var phase: Phase = .beforeLHLO
    private var lhloName = ""
    private var envelope: Envelope?
    private var client: LMTPClientInfo?
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var discardingOverlongLine = false
    private var errors = 0
    private var outbox: [Action] = []
    private var shuttingDown = false
    private var inputClosed = false
    /// Bytes of the current message handed out with `.spill` so far.
    private var spilledBytes = 0

    public init(configuration: LMTPConfiguration = LMTPConfiguration()) {
        self.configuration = configuration
    }

    /// The greeting to send when the connection opens.
    public var greeting: LMTPReply {
        LMTPReply(220, nil, "\(configuration.hostname) \(configuration.greetingText)")
    }

    /// The LHLO reply; kept short for Exim's 256-byte reply buffer.
    public var lhloReply: LMTPReply {
        var lines = [
            configuration.hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8",
            "SIZE \(configuration.maxMessageSize)",
        ]
        if configuration.xforward { lines.append("XFORWARD \(LMTPClientInfo.advertisedAttributes)") }
        return LMTPReply(code: 250, lines: lines)
    }

    /// `true` while a message is being received (after `354`, before its final dot was processed).
    public var isReceivingData: Bool {
        if case .data = phase { return true }
        return false
    }

    /// `true` once the session has decided to close.
    public var isClosed: Bool {
        if case .closed = phase { return true }
        return false
    }

    // MARK: - Input

    /// Appends received bytes. Bytes after QUIT or a closing reply are ignored.
    public mutating func receive<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if case .closed = phase { return }
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The peer closed its side. Bytes already received are still processed (a message whose final
    /// dot arrived is delivered); a message still in DATA is discarded, never delivered, and
    /// ``lostInDataBytes`` tells how much of it had arrived.
    public mutating func receiveEndOfInput() {
        inputClosed = true
    }

    /// Set when the connection ended inside DATA: the bytes of the discarded message.
    public private(set) var lostInDataBytes: Int?

    /// The connection was idle too long: `421 4.4.2` and close.
    public mutating func idleTimeout() {
        closeWith(LMTPReply(421, "4.4.2", "\(configuration.hostname) Error: timeout exceeded"))
    }

    /// The client sent message bytes too slowly (or not at all) for the DATA deadline: `421 4.4.2`
    /// and close; the partial message is discarded.
    public mutating func dataTimeout() {
        if case .data(let decoder) = phase { lostInDataBytes = decoder.size }
        closeWith(LMTPReply(421, "4.4.2", "\(configuration.hostname) Error: timeout exceeded (data rate too low)"))
    }

    /// The server is shutting down: an idle session gets `421 4.3.2` now; a session in a transaction
    /// finishes it and gets `421 4.3.2` at its next command.
    public mutating func beginShutdown() {
        shuttingDown = true
        switch phase {
        case .beforeLHLO, .ready:
            if envelope == nil && !hasCompleteLine { closeWith(shutdownReply) }
        default:
            break
        }
    }

    private var shutdownReply: LMTPReply { LMTPReply(421, "4.3.2", "\(configuration.hostname) Service shutting down") }

    private var hasCompleteLine: Bool { buffer[readIndex...].contains(0x0A) }

    // MARK: - Output

    /// The next thing the driver must do.
    public mutating func nextAction() -> Action {
        while true {
            if !outbox.isEmpty { return outbox.removeFirst() }
            switch phase {
            case .closed:
                return .close
            case .awaitingSender(let sender, _):
                return .checkSender(sender)
            case .awaitingRecipient(let recipient):
                return .checkRecipient(recipient)
            case .awaitingDelivery:
                preconditionFailure("nextAction() called before finishDelivery(_:)")
            case .data(var decoder):
                phase = .beforeLHLO  // placeholder while the decoder is mutated (avoids a copy)
                let finished = decoder.consume(buffer, index: &readIndex)
                if let threshold = configuration.spillThreshold, decoder.content.count >= threshold {
                    spilledBytes += decoder.content.count
                    outbox.append(.spill(decoder.takeContent()))
                }
                if finished {
                    finishData(decoder)
                } else if inputClosed {
                    lostInDataBytes = decoder.size
                    envelope = nil
                    phase = .closed
                } else {
                    phase = .data(decoder)
                    if outbox.isEmpty { return .needInput }  // else hand out the spill first
                }
            case .beforeLHLO, .ready:
                guard let line = nextLine() else { return inputClosed ? .close : .needInput }
                handle(line: line)
            }
        }
    }

    /// Answers ``Action/checkSender(_:)``.
    public mutating func resolveSender(_ decision: LMTPPolicyDecision) {
        guard case .awaitingSender(let sender, let pending) = phase else { return }
        phase = .ready
        switch decision {
        case .accept:
            envelope = pending
            outbox.append(.send(LMTPReply(250, "2.1.0", "Ok")))
        case .reply(let reply):
            if reply.isPositive { envelope = pending }
            _ = sender
            outbox.append(.send(reply))
        }
    }

    /// Answers ``Action/checkRecipient(_:)``.
    public mutating func resolveRecipient(_ decision: LMTPPolicyDecision) {
        guard case .awaitingRecipient(let recipient) = phase else { return }
        phase = .ready
        switch decision {
        case .accept:
            envelope?.recipients.append(recipient)
            outbox.append(.send(LMTPReply(250, "2.1.5", "Ok")))
        case .reply(let reply):
            if reply.isPositive { envelope?.recipients.append(recipient) }
            outbox.append(.send(reply))
        }
    }

    /// Answers ``Action/deliver(_:)`` with one result per recipient, in RCPT order. Missing results
    /// are answered `451 4.3.0` so the MTA retries them; extra ones are ignored.
    public mutating func finishDelivery(_ results: LMTPRecipientResults) {
        guard case .awaitingDelivery(let recipients) = phase else { return }
        for recipient in recipients {
            outbox.append(.send(recipientReply(recipient, results[recipient] ?? LMTPRecipientResults.missing)))
        }
        phase = .ready
        if shuttingDown && !inputClosed && !hasCompleteLine { closeWith(shutdownReply) }
    }

    private func recipientReply(_ recipient: LMTPRecipient, _ result: LMTPRecipientResult) -> LMTPReply {
        var code = result.code
        var enhanced = result.enhancedCode
        if !(200..<600).contains(code) {
            code = 451
            enhanced = "4.3.0"
        }
        if enhanced.first != String(code / 100).first { enhanced = "\(code / 100).0.0" }
        // Reply text must not break the reply: CR, LF and other controls become spaces.
        let text = String(
            String.UnicodeScalarView(result.text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 })
        )
        return LMTPReply(code, enhanced, "<\(LMTPReply.quoting(recipient.mailbox.address, maxBytes: 256))> \(text)")
    }

    // MARK: - Commands

    private mutating func nextLine() -> ArraySlice<UInt8>? {
        let limit = configuration.maxCommandLineLength
        while true {
            let available = buffer[readIndex...]
            guard let lineFeed = available.firstIndex(of: 0x0A) else {
                if available.count > limit {
                    discardingOverlongLine = true
                    readIndex = buffer.count
                }
                return nil
            }
            let line = buffer[readIndex...lineFeed]
            readIndex = lineFeed + 1
            if discardingOverlongLine || line.count > limit {
                discardingOverlongLine = false
                reply(LMTPReply(500, "5.5.2", "Error: command too long"), isError: true)
                if case .closed = phase { return nil }
                continue
            }
            return line
        }
    }

    private mutating func closeWith(_ reply: LMTPReply) {
        outbox.append(.send(reply))
        envelope = nil
        phase = .closed
    }

    private mutating func reply(_ reply: LMTPReply, isError: Bool = false) {
        outbox.append(.send(reply))
        guard isError else { return }
        errors += 1
        if errors >= configuration.maxErrors {
            closeWith(LMTPReply(421, "4.7.0", "\(configuration.hostname) Error: too many errors"))
        }
    }

    private mutating func syntaxError(_ text: String, code: Int = 501, enhanced: String = "5.5.4") {
        reply(LMTPReply(code, enhanced, text), isError: true)
    }

    private mutating func handle(line raw: ArraySlice<UInt8>) {
        // Strip LF, then one CR; any other CR, NUL, control byte or invalid UTF-8 is a syntax error.
        var line = raw.dropLast()
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        while let last = line.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { line = line.dropLast() }
        if line.isEmpty || line.contains(where: { ($0 < 0x20 && $0 != UInt8(ascii: "\t")) || $0 == 0x7F })
            || String(validating: line, as: UTF8.self) == nil
        {
            syntaxError("Error: bad syntax", code: 500, enhanced: "5.5.2")
            return
        }
        let verbEnd = line.firstIndex(of: UInt8(ascii: " ")) ?? line.endIndex
        let verb = String(decoding: line[line.startIndex..<verbEnd], as: UTF8.self).uppercased()
        var argument = line[verbEnd...]
        while argument.first == UInt8(ascii: " ") { argument = argument.dropFirst() }

        if shuttingDown && envelope == nil && verb != "QUIT" {
            closeWith(shutdownReply)
            return
        }
        switch verb {
        case "LHLO": lhlo(argument)
        case "HELO", "EHLO": syntaxError("Error: this is an LMTP server, use LHLO", code: 500, enhanced: "5.5.1")
        case "MAIL": mail(line[verbEnd...])
        case "RCPT": rcpt(line[verbEnd...])
        case "DATA": data(argument)
        case "RSET":
            guard argument.isEmpty else { return syntaxError("Syntax: RSET") }
            resetTransaction()
            reply(LMTPReply(250, "2.0.0", "Ok"))
        case "NOOP": reply(LMTPReply(250, "2.0.0", "Ok"))
        case "QUIT":
            guard argument.isEmpty else { return syntaxError("Syntax: QUIT") }
            closeWith(LMTPReply(221, "2.0.0", "Bye"))
        case "VRFY":
            guard !argument.isEmpty else { return syntaxError("Syntax: VRFY address") }
            reply(LMTPReply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"))
        case "HELP":
            reply(LMTPReply(214, "2.0.0", "Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP XFORWARD"))
        case "XFORWARD" where configuration.xforward: xforward(argument)
        case "EXPN", "TURN", "ETRN", "SEND", "SOML", "SAML", "STARTTLS", "AUTH", "BDAT", "ATRN", "XCLIENT", "XFORWARD":
            syntaxError("Error: command not implemented", code: 502, enhanced: "5.5.1")
        default:
            syntaxError("Error: command not recognized", code: 500, enhanced: "5.5.2")
        }
    }

    private mutating func resetTransaction() {
        envelope = nil
        client = nil
    }

    private mutating func lhlo(_ argument: ArraySlice<UInt8>) {
        guard !argument.isEmpty else { return syntaxError("Syntax: LHLO hostname") }
        resetTransaction()
        lhloName = String(decoding: argument, as: UTF8.self)
        phase = .ready
        reply(lhloReply)
    }

    /// Checks `SP KEYWORD:` after the verb (case-insensitive, spaces after the colon tolerated).
    private func afterKeyword(_ rest: ArraySlice<UInt8>, _ keyword: String) -> ArraySlice<UInt8>? {
        guard rest.first == UInt8(ascii: " ") else { return nil }
        let body = rest.dropFirst()
        let expected = Array(keyword.utf8)
        guard body.count >= expected.count,
            zip(body.prefix(expected.count), expected).allSatisfy({ ($0 | 0x20) == ($1 | 0x20) })
        else { return nil }
        var after = body.dropFirst(expected.count)
        while after.first == UInt8(ascii: " ") { after = after.dropFirst() }
        return after
    }

    private mutating func mail(_ rest: ArraySlice<UInt8>) {
        guard case .ready = phase else { return syntaxError("Error: send LHLO first", code: 503, enhanced: "5.5.1") }
        guard envelope == nil else { return syntaxError("Error: nested MAIL command", code: 503, enhanced: "5.5.1") }
        guard let pathText = afterKeyword(rest, "FROM:"), !pathText.isEmpty else {
            return syntaxError("Syntax: MAIL FROM:<address>")
        }
        let parsed: (path: LMTPPathParser.Path, parameters: ArraySlice<UInt8>)
        do {
            parsed = try LMTPPathParser.parse(pathText)
        } catch .syntax {
            return syntaxError("Syntax: MAIL FROM:<address>")
        } catch {
            return syntaxError("Bad sender address syntax", code: 501, enhanced: "5.1.7")
        }
        guard case .mailbox(let mailboxOrPostmaster) = parsed.path else {
            return mailParameters(parsed.parameters, sender: .null)
        }
        guard mailboxOrPostmaster.domain != nil else {
            return syntaxError("Bad sender address syntax", code: 501, enhanced: "5.1.7")
        }
        mailParameters(parsed.parameters, sender: .mailbox(mailboxOrPostmaster))
    }

    private mutating func mailParameters(_ text: ArraySlice<UInt8>, sender: LMTPReversePath) {
        guard let parameters = try? ESMTPParameters(parsing: text) else { return syntaxError("Bad parameter syntax") }
        var pending = Envelope(sender: sender, smtpUTF8: false)
        for (keyword, value) in parameters.entries {
            switch keyword {
            case "SIZE":
                guard let value, (1...20).contains(value.utf8.count),
                    value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
                else {
                    return syntaxError("Bad SIZE parameter")
                }
                guard let size = Int(value), size <= configuration.maxMessageSize else {
                    return reply(LMTPReply(552, "5.3.4", "Message size exceeds fixed limit"))
                }
                pending.declaredSize = size
            case "BODY":
                guard let value, let body = LMTPBodyType(rawValue: value.uppercased()) else {
                    return syntaxError("Bad BODY parameter (7BIT or 8BITMIME)")
                }
                pending.bodyType = body
            case "SMTPUTF8":
                guard value == nil else { return syntaxError("SMTPUTF8 takes no value") }
                pending.smtpUTF8 = true
            default:
                return syntaxError("Unsupported option: \(LMTPReply.quoting(keyword))", code: 555, enhanced: "5.5.4")
            }
        }
        phase = .awaitingSender(sender, pending)
    }

    private mutating func rcpt(_ rest: ArraySlice<UInt8>) {
        guard case .ready = phase else { return syntaxError("Error: send LHLO first", code: 503, enhanced: "5.5.1") }
        guard envelope != nil else { return syntaxError("Error: need MAIL command", code: 503, enhanced: "5.5.1") }
        guard let pathText = afterKeyword(rest, "TO:"), !pathText.isEmpty else {
            return syntaxError("Syntax: RCPT TO:<address>")
        }
        let parsed: (path: LMTPPathParser.Path, parameters: ArraySlice<UInt8>)
        do {
            parsed = try LMTPPathParser.parse(pathText)
        } catch .syntax {
            return syntaxError("Syntax: RCPT TO:<address>")
        } catch {
            return syntaxError("Bad recipient address syntax", code: 501, enhanced: "5.1.3")
        }
        guard case .mailbox(let mailbox) = parsed.path else {
            return syntaxError("Bad recipient address syntax", code: 501, enhanced: "5.1.3")
        }
        guard let parameters = try? ESMTPParameters(parsing: parsed.parameters) else {
            return syntaxError("Bad parameter syntax")
        }
        var recipient = LMTPRecipient(mailbox: mailbox)
        for (keyword, value) in parameters.entries {
            switch keyword {
            case "ORCPT":
                guard let value, let semicolon = value.firstIndex(of: ";"), semicolon != value.startIndex,
                    value.index(after: semicolon) != value.endIndex
                else { return syntaxError("Bad ORCPT parameter") }
                recipient.originalRecipient = value
            default:
                return syntaxError("Unsupported option: \(LMTPReply.quoting(keyword))", code: 555, enhanced: "5.5.4")
            }
        }
        if (envelope?.recipients.count ?? 0) >= configuration.maxRecipients {
            return reply(LMTPReply(452, "4.5.3", "Error: too many recipients"))
        }
        phase = .awaitingRecipient(recipient)
    }

    private mutating func data(_ argument: ArraySlice<UInt8>) {
        guard argument.isEmpty else { return syntaxError("Syntax: DATA") }
        guard case .ready = phase else { return syntaxError("Error: send LHLO first", code: 503, enhanced: "5.5.1") }
        guard let envelope else { return syntaxError("Error: need MAIL command", code: 503, enhanced: "5.5.1") }
        guard !envelope.recipients.isEmpty else {
            return syntaxError("Error: no valid recipients", code: 503, enhanced: "5.5.1")
        }
        reply(LMTPReply(354, nil, "End data with <CR><LF>.<CR><LF>"))
        spilledBytes = 0
        phase = .data(
            LMTPDataDecoder(
                limit: configuration.maxMessageSize,
                headerBytes: configuration.maxHeaderBytes,
                headerFields: configuration.maxHeaderFields
            )
        )
    }

    private mutating func xforward(_ argument: ArraySlice<UInt8>) {
        guard case .ready = phase else { return syntaxError("Error: send LHLO first", code: 503, enhanced: "5.5.1") }
        guard envelope == nil else {
            return syntaxError("Error: MAIL transaction in progress", code: 503, enhanced: "5.5.1")
        }
        guard !argument.isEmpty else { return syntaxError("Syntax: XFORWARD attribute=value...") }
        var info = client ?? LMTPClientInfo()
        for item in argument.split(separator: UInt8(ascii: " ")) {
            guard let equals = item.firstIndex(of: UInt8(ascii: "=")), equals != item.startIndex else {
                return syntaxError("Syntax: XFORWARD attribute=value...")
            }
            let name = String(decoding: item[item.startIndex..<equals], as: UTF8.self)
            guard let decoded = LMTPClientInfo.decodeXtext(item[(equals + 1)...]), decoded.count <= 255,
                let text = String(validating: decoded, as: UTF8.self)
            else { return syntaxError("Bad XFORWARD attribute value") }
            let value: String? = text.uppercased() == "[UNAVAILABLE]" || text.isEmpty ? nil : text
            guard info.set(name, to: value) else {
                return syntaxError("Bad XFORWARD attribute name: \(LMTPReply.quoting(name))")
            }
        }
        client = info
        reply(LMTPReply(250, "2.0.0", "Ok"))
    }

    private mutating func finishData(_ decoder: LMTPDataDecoder) {
        guard let envelope else {
            phase = .ready
            return
        }
        let recipients = envelope.recipients
        let refusal: String? =
            decoder.headerLimitExceeded
            ? "Message header exceeds fixed limit (\(configuration.maxHeaderBytes) bytes, \(configuration.maxHeaderFields) fields)"
            : decoder.exceededLimit ? "Message size exceeds fixed limit" : nil
        if let refusal {
            for recipient in recipients {
                outbox.append(
                    .send(
                        recipientReply(recipient, LMTPRecipientResult(code: 552, enhancedCode: "5.3.4", text: refusal))
                    )
                )
            }
            resetTransaction()
            phase = .ready
            if shuttingDown && !hasCompleteLine { closeWith(shutdownReply) }
            return
        }
        let message = LMTPMessage(
            lhloName: lhloName,
            sender: envelope.sender,
            declaredSize: envelope.declaredSize,
            bodyType: envelope.bodyType,
            smtpUTF8: envelope.smtpUTF8,
            recipients: recipients,
            client: client ?? LMTPClientInfo(),
            data: decoder.content,
            spilledBytes: spilledBytes
        )
        resetTransaction()
        phase = .awaitingDelivery(recipients)
        outbox.append(.deliver(message))
    }
}
