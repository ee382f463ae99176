import Foundation
import LMTPHook
import LMTPHookTestSupport
import Testing

@Suite("lmtphook command line", .serialized)
struct CommandLineTests {
    @Test("serve: delivers over its UNIX socket; SIGTERM → exit 0 and the socket file is gone")
    func serveAndTerminate() async throws {
        let binary = try Binary.require()
        let sink = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        let socketPath = directory.file("lmtp.sock")
        let process = try await ServeProcess.start(
            [
                "--socket", socketPath, "--webhook", sink.url, "--hostname", "cli.test", "--log-level", "warning",
                "--omit-raw", "--attachments", "inline",
            ],
            socket: socketPath
        )
        #expect(FileManager.default.fileExists(atPath: socketPath))

        let messageFile = directory.file("message.eml")
        writeFile(messageFile, "Subject: via send\r\n\r\nhello\r\n")
        let send = await runProcess(
            binary,
            [
                "send", "--socket", socketPath, "--from", "a@example.org", "--to", "b@example.test", "--to",
                "c@example.test", messageFile,
            ]
        )
        #expect(send.status == 0, "\(send.output)")
        #expect(send.output.contains("250 2.0.0 <b@example.test> delivered id="))
        #expect(send.output.contains("250 2.0.0 <c@example.test> delivered id="))
        let requests = await sink.waitFor(1)
        #expect(requests.count == 1)
        let document = try json(try #require(requests.first).body)
        #expect(document["raw_base64"] is NSNull)
        #expect(document["subject"] as? String == "via send")

        try await process.stop()  // SIGTERM
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: socketPath))
        directory.remove()
        await sink.stop()
    }

    @Test(
        "bad arguments get a clear message and exit status 64",
        arguments: [
            (["serve"], "give --socket PATH or --listen HOST:PORT"),
            (
                ["serve", "--listen", "127.0.0.1:2424", "--webhook", "ftp://x/"],
                "--webhook (endpoints[0].url): must be an http:// or https:// URL"
            ),
            (["serve", "--listen", "nonsense"], "--listen (listen[0].tcp): must be HOST:PORT"),
            (
                ["serve", "--listen", "127.0.0.1:0", "--max-message-size", "lots"],
                "--max-message-size (limits.max_message_size): must be a byte count"
            ),
            (["serve", "--listen", "127.0.0.1:0", "--hostname", "two words"], "hostname must be"),
            (
                ["serve", "--config", "/etc/lmtphook/lmtphook.yaml", "--webhook", "http://127.0.0.1:9/"],
                "--webhook defines the endpoint of a configuration without a file"
            ),
            (["send", "--to", "x@y"], "give exactly one of --socket PATH or --server HOST:PORT"),
        ]
    )
    func badArguments(_ arguments: [String], _ message: String) async throws {
        let result = await runProcess(try Binary.require(), arguments)
        #expect(result.status == 64, "\(result.output)")
        #expect(result.output.contains(message), "\(result.output)")
    }

    @Test("serve refuses a socket path where a live server answers, and says so")
    func liveSocketRefused() async throws {
        let binary = try Binary.require()
        let relay = try await RunningRelay.start(webhookURL: "http://127.0.0.1:1/")
        let result = await runProcess(binary, ["serve", "--socket", relay.socketPath, "--log-level", "error"])
        #expect(result.status == 1)
        #expect(result.output.contains("already listening on \(relay.socketPath)"), "\(result.output)")
        try await relay.stop()
    }

    @Test("demo --once: the whole path on an embedded receiver")
    func demo() async throws {
        let result = await runProcess(try Binary.require(), ["demo", "--once", "--listen", "127.0.0.1:0"])
        #expect(result.status == 0, "\(result.output)")
        // Indented for people, keys in schema order (schema first).
        #expect(result.output.contains("\n{\n  \"schema\": 1,\n  \"id\": \""), "\(result.output.prefix(600))")
        #expect(result.output.contains("\n  \"subject\": \"Printer on floor 3 is on fire\",\n"))
        #expect(result.output.contains("250 2.0.0 <support@example.test> delivered id="))
        #expect(result.output.contains("250 2.0.0 <ops@example.test> delivered id="))
        #expect(result.output.contains("--- demo OK"))
        let lines = await runProcess(
            try Binary.require(),
            ["demo", "--once", "--json-lines", "--listen", "127.0.0.1:0"]
        )
        #expect(lines.status == 0, "\(lines.output)")
        let document = lines.output.split(separator: "\n").first { $0.hasPrefix("{") }
        #expect(
            document?.contains("\"subject\":\"Printer on floor 3 is on fire\"") == true,
            "one JSON line with --json-lines"
        )
    }
}
