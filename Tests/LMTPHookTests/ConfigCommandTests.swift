import Foundation
import LMTPHook
import LMTPHookTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `check-config`, `serve --config` with SIGHUP reloads, and `send-test`, as an operator runs them.
@Suite("Configuration on the command line", .serialized)
struct ConfigCommandTests {
    @Test("check-config prints the effective configuration with secrets masked; exit 0")
    func checkConfigExample() async throws {
        let result = await runProcess(
            try Binary.require(),
            [
                "check-config", ConfigFileTests.examplePath, "--route", "billing+urgent@example.com", "--route",
                "x@nowhere.test",
            ],
            environment: ConfigFileTests.exampleEnvironment
        )
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("routes (first match wins):"))
        #expect(result.output.contains("route billing+urgent@example.com -> billing-phone -> phone (tag urgent)"))
        #expect(result.output.contains("route x@nowhere.test -> everything-else -> archive"))
        #expect(result.output.contains("configuration OK"))
        for secret in ConfigFileTests.exampleEnvironment.values { #expect(!result.output.contains(secret)) }
    }

    @Test("check-config: an invalid file names file, line and key; exit 1")
    func checkConfigInvalid() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.file("bad.yaml")
        writeFile(file, "endpoints:\n  - name: a\n    url: http://x/\n    timout: 5s\n")
        let result = await runProcess(try Binary.require(), ["check-config", file])
        #expect(result.status == 1)
        #expect(
            result.output.contains("\(file):4: endpoints[0]: unknown key 'timout' (did you mean 'timeout'?)"),
            "\(result.output)"
        )
    }

    @Test("serve refuses to start on an invalid file, naming file, line and key; exit 1")
    func serveRefusesInvalidConfig() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.file("bad.yaml")
        writeFile(
            file,
            "listen: [\"\(directory.file("s.sock"))\"]\nendpoints:\n  - name: a\n    url: http://x/\nroutes:\n  - {match: \"*\", endpoint: b}\n",
            mode: 0o640
        )
        let result = await runProcess(try Binary.require(), ["serve", "--config", file])
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("\(file):6: routes[0].endpoint: no endpoint named 'b'"), "\(result.output)")
        #expect(!FileManager.default.fileExists(atPath: directory.file("s.sock")), "nothing was started")
    }

    @Test("SIGHUP reloads routes without dropping connections; a bad file is refused and the old routes stay")
    func reload() async throws {
        let first = try await RecordingSink.start()
        let second = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let socketPath = directory.file("lmtp.sock")
        let configPath = directory.file("lmtphook.yaml")
        func config(routes: String) -> String {
            """
            listen:
              - socket: \(socketPath)
            endpoints:
              - {name: first, url: "\(first.url)"}
              - {name: second, url: "\(second.url)"}
            routes:
            \(routes)
            """
        }
        writeFile(configPath, config(routes: "  - {match: a@example.test, endpoint: first}"), mode: 0o640)
        let logPath = directory.file("serve.log")
        let process = try await ServeProcess.start(
            ["--config", configPath, "--log-level", "info"],
            socket: socketPath,
            stderr: logPath
        )
        defer { if process.isRunning { process.terminate() } }

        // A connection opened before the reload and used after it.
        let early = try await blocking { try LMTPClientConnection(unixPath: socketPath) }
        var replies = try await blocking {
            try early.deliverEach(
                from: "s@example.org",
                to: ["a@example.test", "b@example.test"],
                message: sampleMessage()
            )
        }
        #expect(replies.map(\.code) == [250, 550], "b is not routed yet: \(replies)")

        writeFile(
            configPath,
            config(
                routes: "  - {match: a@example.test, endpoint: first}\n  - {match: b@example.test, endpoint: second}"
            ),
            mode: 0o640
        )
        process.signal(SIGHUP)
        try await waitForLog(logPath, "configuration reloaded")
        replies = try await blocking {
            try early.deliverEach(
                lhlo: nil,
                from: "s@example.org",
                to: ["b@example.test"],
                message: sampleMessage(subject: "after reload")
            )
        }
        #expect(replies.map(\.code) == [250], "same connection, new routes: \(replies)")
        #expect(second.requests.count == 1)

        writeFile(configPath, "endpoints: [\n", mode: 0o640)
        process.signal(SIGHUP)
        try await waitForLog(logPath, "reload refused")
        replies = try await blocking {
            let client = try LMTPClientConnection(unixPath: socketPath)
            return try client.deliverEach(
                from: "s@example.org",
                to: ["b@example.test", "a@example.test"],
                message: sampleMessage(subject: "still serving")
            )
        }
        #expect(replies.map(\.code) == [250, 250], "the running configuration stays: \(replies)")
        #expect(process.isRunning)

        try await process.stop()
        #expect(process.terminationStatus == 0)
        await first.stop()
        await second.stop()
    }

    @Test("send-test delivers a realistic message and prints one reply per recipient")
    func sendTest() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(
            ConfigFile.parse(
                """
                endpoints:
                  - {name: chat, url: "\(sink.url)slack/x", format: slack}
                routes:
                  - {match: "@example.test", endpoint: chat}
                """
            ).relay
        )
        let binary = try Binary.require()
        let socketPath = relay.socketPath
        // Blocking, so off the cooperative pool: the in-process relay needs it to answer.
        let result = await runProcess(
            binary,
            ["send-test", "--socket", socketPath, "--to", "support@example.test", "--to", "nobody@elsewhere.test"]
        )
        #expect(result.status == 1, "one recipient refused: \(result.output)")
        #expect(result.output.contains("support@example.test: 250"), "\(result.output)")
        #expect(result.output.contains("nobody@elsewhere.test: 550 5.1.1"), "\(result.output)")
        let body = String(decoding: try #require(sink.requests.first).body, as: UTF8.self)
        #expect(body.contains("invoice-4711.pdf"), "the attachment is listed")
        #expect(body.contains("Invoice 4711"), "the subject is shown")
        #expect(!body.contains("Please send us the invoice"), "the quoted reply is trimmed")
        try await relay.stop()
        await sink.stop()
    }

    private func waitForLog(_ path: String, _ text: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let bytes = readFile(path), String(decoding: bytes, as: UTF8.self).contains(text) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("log never said '\(text)': \(readFile(path).map { String(decoding: $0, as: UTF8.self) } ?? "")")
    }
}
