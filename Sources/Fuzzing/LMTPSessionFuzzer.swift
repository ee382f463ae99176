import LMTPCore

/// Feeds one arbitrary byte stream into an ``LMTPSession`` twice — whole, and split into chunks
/// chosen by the input itself — and traps unless both runs give the same replies and messages and
/// every reply is well formed. The policy and delivery results are derived from the addresses, so
/// refusals, 4xx and 5xx results are exercised too.
///
/// Input layout: byte 0 seeds the chunk sizes; the rest is what the client sends.
package enum LMTPSessionFuzzer {
    /// Small limits so the fuzzer reaches every limit branch with short inputs.
    package static let configuration = LMTPConfiguration(
        hostname: "fuzz.test",
        maxMessageSize: 8192,
        maxRecipients: 4,
        maxCommandLineLength: 512,
        maxErrors: 8,
        maxHeaderBytes: 1024,
        maxHeaderFields: 16,
        spillThreshold: 4096
    )

    /// Runs one input; traps (a finding) when an invariant does not hold.
    package static func run(_ input: UnsafeBufferPointer<UInt8>) {
        guard let seed = input.first else { return }
        let stream = Array(input.dropFirst())
        let whole = transcript(of: stream, chunkSizes: [stream.count])
        var sizes: [Int] = []
        var state = UInt32(seed) &+ 1
        var total = 0
        while total < stream.count {
            state = state &* 1_103_515_245 &+ 12345
            let size = Int((state >> 16) % 17) + 1
            sizes.append(size)
            total += size
        }
        let split = transcript(of: stream, chunkSizes: sizes)
        precondition(whole == split, "the session's output depends on how the input was split")
    }

    /// Everything a session produced: reply bytes, and per delivered message its envelope and data.
    struct Transcript: Equatable {
        var output: [UInt8] = []
        var messages: [[UInt8]] = []
    }

    static func transcript(of stream: [UInt8], chunkSizes: [Int]) -> Transcript {
        var session = LMTPSession(configuration: configuration)
        var result = Transcript()
        var sent = 0
        var chunks = chunkSizes.makeIterator()
        var steps = 0
        var replies = [session.greeting]
        var spilled: [UInt8] = []
        loop: while true {
            steps += 1
            precondition(steps < 100_000 + stream.count * 4, "the session does not make progress")
            let action = session.nextAction()
            switch action {
            case .spill, .deliver: break
            default:
                // The driver's rule: a transaction that ended without a message drops its spilled bytes.
                if !session.isReceivingData { spilled = [] }
            }
            switch action {
            case .send(let reply): replies.append(reply)
            case .checkSender(let sender):
                if case .mailbox(let box) = sender, box.localPart.hasPrefix("b") {
                    session.resolveSender(.reply(LMTPReply(550, "5.7.1", "Sender blocked")))
                } else {
                    session.resolveSender(.accept)
                }
            case .checkRecipient(let recipient):
                let local = recipient.mailbox.localPart
                if local.hasPrefix("r") {
                    session.resolveRecipient(.reply(LMTPReply(550, "5.1.1", "User unknown")))
                } else if local.hasPrefix("t") {
                    session.resolveRecipient(.reply(LMTPReply(450, "4.2.1", "Try later")))
                } else {
                    session.resolveRecipient(.accept)
                }
            case .spill(let bytes):
                precondition(
                    session.isReceivingData || bytes.count >= configuration.spillThreshold!,
                    "a spill outside DATA"
                )
                spilled += bytes
            case .deliver(let message):
                precondition(
                    message.spilledBytes == spilled.count,
                    "spilled byte count does not match what was spilled"
                )
                let data = spilled + message.data
                spilled = []
                precondition(!message.recipients.isEmpty && message.recipients.count <= configuration.maxRecipients)
                precondition(data.count <= configuration.maxMessageSize, "a message over the size limit was delivered")
                result.messages.append(
                    Array("\(message.sender)|\(message.recipients.map { $0.mailbox.address })|".utf8) + data
                )
                let before = replies.count
                session.finishDelivery(
                    LMTPRecipientResults(message.recipients) {
                        $0.mailbox.localPart.hasPrefix("f") ? .temporaryFailure() : .delivered()
                    }
                )
                // One reply per recipient follows, before anything else.
                for _ in message.recipients {
                    guard case .send(let reply) = session.nextAction() else {
                        preconditionFailure("a recipient got no reply")
                    }
                    replies.append(reply)
                }
                precondition(replies.count == before + message.recipients.count)
            case .needInput:
                guard let size = chunks.next() else {
                    session.receiveEndOfInput()
                    continue
                }
                let end = min(stream.count, sent + size)
                session.receive(stream[sent..<end])
                sent = end
            case .close:
                break loop
            }
        }
        for reply in replies {
            let wire = Array(reply.wireFormat.utf8)
            check(wire)
            result.output += wire
        }
        return result
    }

    /// A reply is one or more `NNN-text CRLF` lines ending with `NNN text CRLF`, code 2xx–5xx, no
    /// other CR or LF, at most 512 bytes a line (RFC 5321 §4.5.3.1.5).
    static func check(_ wire: [UInt8]) {
        let lines = wire.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        precondition(wire.last == UInt8(ascii: "\n") && !lines.isEmpty, "reply does not end with a line feed")
        for (index, line) in lines.enumerated() {
            precondition(
                line.count >= 5 && line.count <= 512 && line.last == UInt8(ascii: "\r"),
                "malformed reply line"
            )
            let code = line.prefix(3)
            precondition(
                code.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } && (0x32...0x35).contains(code.first!),
                "bad reply code"
            )
            let separator = line[line.startIndex + 3]
            precondition(
                separator == (index == lines.count - 1 ? UInt8(ascii: " ") : UInt8(ascii: "-")),
                "bad reply continuation"
            )
            precondition(!line.dropLast().contains(UInt8(ascii: "\r")), "bare CR in a reply")
        }
    }
}
