import Foundation
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
            return LMTPRecipientResults(all: .delivered("stored"))
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

    @Test(
        "a server runs once (a second run() throws, the socket file is gone after the first); the greeting text and the metric prefix are settings; waitUntilListening gives typed addresses"
    )
    func lifecycleAndSettings() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let socketPath = directory.file("lmtp.sock")
        var configuration = LMTPServerConfiguration(
            listeners: [.unix(path: socketPath), .tcp(host: "127.0.0.1", port: 0)],
            session: LMTPConfiguration(hostname: "mx.test")
        )
        configuration.session.greetingText = "LMTP acme-mail ready"
        configuration.metricsPrefix = "acme_lmtp"
        let server = LMTPServer(configuration: configuration) { _ in LMTPRecipientResults(all: .delivered()) }
        let running = Task { try await server.run() }
        let addresses = try await server.waitUntilListening()
        #expect(addresses.first == .unix(path: socketPath))
        guard case .tcp("127.0.0.1", let port) = addresses.last else {
            Issue.record("no TCP address: \(addresses)")
            return
        }
        #expect(port > 0)
        let greeting = try await blocking { try LMTPClientConnection(host: "127.0.0.1", port: port).readReply() }
        #expect(greeting.lines == ["mx.test LMTP acme-mail ready"])
        server.stop()
        try await running.value
        #expect(!FileManager.default.fileExists(atPath: socketPath), "run() released its socket file")
        await #expect(throws: LMTPServerError.self) { try await server.run() }

        configuration.metricsPrefix = "9 bad"
        let invalid = LMTPServer(configuration: configuration) { _ in LMTPRecipientResults() }
        await #expect(throws: LMTPServerError.self) { try await invalid.run() }
    }
}
