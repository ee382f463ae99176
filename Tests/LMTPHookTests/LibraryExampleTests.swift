import LMTPCore
import LMTPHook
import LMTPHookTestSupport
import LMTPServer
import Logging
import Testing

/// The README's library example, run for real: it must keep compiling and working.
@Suite("LMTPServer library")
struct LibraryExampleTests {
    @Test func readmeExample() async throws {
        let directory = TemporaryDirectory()
        let socketPath = directory.file("lmtp.sock")

        // --- README example (keep in sync) ---
        let server = LMTPServer(
            configuration: .init(listeners: [.unix(path: socketPath, mode: 0o660)]),
            policy: LMTPPolicy(recipient: { rcpt in
                rcpt.mailbox.domain == "example.com" ? .accept : .reply(LMTPReply(550, "5.1.1", "No such domain"))
            }),
            logger: Logger(label: "my-lmtp")
        ) { message in
            print("from \(message.sender), \(message.data.count) bytes")
            return message.recipients.map { _ in .delivered("stored") }
        }
        let running = Task { try await server.run() }  // server.stop() from anywhere ends it
        // --- end of README example ---

        _ = try await server.waitUntilListening()
        let replies = try await blocking { () -> [LMTPClientConnection.Reply] in
            let client = try LMTPClientConnection(unixPath: socketPath)
            _ = try client.readReply()
            try client.send(
                "LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.com>\r\nRCPT TO:<u@other.test>\r\nDATA\r\nhi\r\n.\r\n"
            )
            return try client.readReplies(6)
        }
        #expect(replies.map(\.code) == [250, 250, 250, 550, 354, 250])
        #expect(replies.last?.lines.last == "2.0.0 <u@example.com> stored")
        server.stop()
        try await running.value
        directory.remove()
    }
}
