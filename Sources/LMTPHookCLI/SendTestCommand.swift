import ArgumentParser
import Foundation
import LMTPHook
import LMTPServer

/// `lmtphook send-test`: a realistic test message to a running lmtphook, to check routes end to end.
struct SendTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send-test",
        abstract: "Deliver a realistic test message over LMTP to a running lmtphook and print each recipient's reply.",
        discussion: """
            The message is a reply with a quoted part and a signature, plain and HTML text, non-Latin text and emoji, and a \
            small PDF attachment: what a chat or ticket target should show well. Exit status 0 when every recipient got 2xx.
            """
    )

    @OptionGroup var target: LMTPTargetOptions

    @Option(help: ArgumentHelp("Envelope sender and From address.", valueName: "address"))
    var from: String = "alice@example.org"

    @Option(
        name: .customLong("to"),
        help: ArgumentHelp("Recipient; repeatable (each gets its own reply).", valueName: "address")
    )
    var recipients: [String] = []

    @Flag(help: "Print the message instead of sending it.")
    var print = false

    func validate() throws {
        if recipients.isEmpty { throw ValidationError("give at least one --to ADDRESS") }
        if !print { try target.check() }
    }

    /// The current time as an RFC 5322 date (UTC).
    static func now() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss +0000"
        return formatter.string(from: Date())
    }

    func run() async throws {
        let message = SampleMessage.raw(
            from: from,
            to: recipients,
            date: Self.now(),
            messageID: "<send-test-\(UInt32.random(in: 0...UInt32.max))@lmtphook.invalid>"
        )
        if print {
            Swift.print(String(decoding: message, as: UTF8.self))
            return
        }
        let replies = try await SendCommand.deliver(
            message,
            socket: target.socket,
            server: target.server,
            from: from,
            to: recipients,
            each: true
        )
        for (index, reply) in replies.enumerated() {
            let recipient = index < recipients.count ? recipients[index] : "?"
            Swift.print("\(recipient): \(reply.code) \(reply.lines.joined(separator: " "))")
        }
        if replies.count < recipients.count || replies.contains(where: { $0.code / 100 != 2 }) {
            throw ExitCode.failure
        }
    }
}
