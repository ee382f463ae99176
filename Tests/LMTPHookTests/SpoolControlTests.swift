import Delivery
import Foundation
import LMTPHook
import LMTPHookTestSupport
import Spool
import Testing

/// `lmtphook spool …` while `serve` runs (through its control socket) and without it (the same
/// operations in-process): replays deliver exactly what the daemon would, or nothing.
@Suite("spool commands through the daemon's control socket", .serialized)
struct SpoolControlTests {
    static let bearer = "Bearer tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    static let signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let password = "pw-5b1e0c2a7d9f4e3b8a6c"
    static let token = "qtok-3c9a8b7e6d5f4a1b2c0d"

    /// A relay configured from YAML with one endpoint `tickets` that sends an Authorization
    /// header, signs, and needs `{"id": …}` in the answer; a message queued for it.
    static func queued(
        _ sink: RecordingSink,
        _ directory: TemporaryDirectory
    ) async throws -> (
        RunningRelay, String, String
    ) {
        let spoolPath = directory.file("spool")
        let configPath = directory.file("lmtphook.yaml")
        let url = sink.url.replacingOccurrences(of: "http://", with: "http://ops:\(password)@") + "hook?token=\(token)"
        writeFile(
            configPath,
            """
            spool: {path: "\(spoolPath)", retry_schedule: [1h]}
            endpoints:
              - name: tickets
                url: "\(url)"
                headers: {Authorization: "\(bearer)"}
                secret: "\(signing)"
                success: {json_field: id}
            """,
            mode: 0o640
        )
        sink.answer(503)
        let relay = try await RunningRelay.start(try ConfigFile.load(path: configPath).relay)
        let socket = relay.socketPath
        let replies = try await blocking {
            try LMTPClientConnection(unixPath: socket).deliver(
                from: "a@example.org",
                to: ["help@example.test"],
                message: sampleMessage(subject: "needs a ticket")
            )
        }
        #expect(replies.first?.lines.last?.contains("queued as") == true, "\(replies)")
        return (relay, spoolPath, configPath)
    }

    static func header(_ request: WebhookSink.Request, _ name: String) -> String? {
        request.headers.first { $0.0.lowercased() == name }?.1
    }

    /// Symptom 1: `spool replay --all --spool DIR` (no --config) sent the entry without its
    /// endpoint's Authorization header (→ 401 → dead letter), unsigned, and deleted it after a
    /// 2xx that lacked the `id` its success rule requires.
    @Test(
        "replay without --config while serve runs goes through the daemon: its headers, its signature, its success rule"
    )
    func replayThroughTheDaemon() async throws {
        let binary = try Binary.require()
        let sink = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (relay, spoolPath, _) = try await Self.queued(sink, directory)
        let id = try #require(try Spool(path: spoolPath).ids().first)
        #expect(FileManager.default.fileExists(atPath: spoolPath + "/control.sock"), "serve opened its control socket")
        var info = stat()
        #expect(stat(spoolPath + "/control.sock", &info) == 0 && info.st_mode & 0o777 == 0o600)

        // A 2xx without the id the endpoint's success rule requires: not delivered, kept.
        sink.answer(200)
        let first = await runProcess(binary, ["spool", "replay", "--all", "--spool", spoolPath])
        #expect(first.status == 1 && first.output.contains("still failing 1"), "\(first.output)")
        #expect(try Spool(path: spoolPath).ids() == [id], "kept: the answer did not confirm the message")
        let replayed = try #require(sink.requests.last)
        #expect(Self.header(replayed, "authorization") == Self.bearer, "the endpoint's header")
        #expect(Self.header(replayed, "webhook-signature")?.hasPrefix("v1,") == true, "signed with its secret")
        #expect(Self.header(replayed, "webhook-id") == Self.header(sink.requests[0], "webhook-id"))
        #expect(replayed.path.hasPrefix("/hook?token=\(Self.token)"), "the URL with its token: \(replayed.path)")

        // The receiver confirms (`/status/200` path rules do not apply: answer with the id).
        sink.answer(nil)
        sink.respondWithBody(#"{"id": "T-1"}"#)
        let second = await runProcess(binary, ["spool", "replay", id, "--spool", spoolPath])
        #expect(second.status == 0 && second.output.contains("delivered 1"), "\(second.output)")
        #expect(try Spool(path: spoolPath).ids().isEmpty)
        #expect(relay.relay.delivery.scheduledAttempt(id) == nil, "the daemon's schedule knows it is done")
        try await relay.stop()
        await sink.stop()
    }

    @Test(
        "without a daemon, replay without --config refuses an entry whose endpoint sent headers, signed or had a success rule, and says what is missing; with --config it sends it as the daemon would"
    )
    func replayWithoutTheDaemon() async throws {
        let binary = try Binary.require()
        let sink = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (relay, spoolPath, configPath) = try await Self.queued(sink, directory)
        try await relay.stop()
        #expect(!FileManager.default.fileExists(atPath: spoolPath + "/control.sock"), "removed at exit")
        let before = sink.requests.count
        sink.answer(nil)
        sink.respondWithBody(#"{"id": "T-2"}"#)

        let refused = await runProcess(binary, ["spool", "replay", "--all", "--spool", spoolPath])
        #expect(refused.status == 1, "\(refused.output)")
        for missing in ["header authorization", "its signing secret", "success rule", "its URL", "give --config FILE"] {
            #expect(refused.output.contains(missing), "names \(missing): \(refused.output)")
        }
        #expect(sink.requests.count == before, "nothing sent with less than its endpoint sends")

        let sent = await runProcess(binary, ["spool", "replay", "--all", "--spool", spoolPath, "--config", configPath])
        #expect(sent.status == 0 && sent.output.contains("delivered 1"), "\(sent.output)")
        let replayed = try #require(sink.requests.last)
        #expect(Self.header(replayed, "authorization") == Self.bearer)
        #expect(Self.header(replayed, "webhook-signature")?.hasPrefix("v1,") == true)
        #expect(try Spool(path: spoolPath).ids().isEmpty)
        await sink.stop()
    }

    @Test(
        "no secret at rest or on screen: the spool files and every command's output (list, show, stats, replay --dry-run, through the daemon and without it) never contain a URL password, a URL token, a header value or a signing secret"
    )
    func noSecretsAtRestOrOnScreen() async throws {
        let binary = try Binary.require()
        let sink = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (relay, spoolPath, _) = try await Self.queued(sink, directory)
        let secrets = [Self.password, Self.token, "tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0", Self.signing]
        // Every byte under the spool directory.
        let files = FileManager.default.enumerator(atPath: spoolPath)?.compactMap { $0 as? String } ?? []
        #expect(files.contains { $0.hasSuffix(".msg") })
        for file in files {
            let text = String(decoding: readFile(spoolPath + "/" + file) ?? [], as: UTF8.self)
            for secret in secrets { #expect(!text.contains(secret), "\(file) holds a secret") }
        }
        let id = try #require(try Spool(path: spoolPath).ids().first)
        let commands: [[String]] = [
            ["spool", "list", "--spool", spoolPath], ["spool", "list", "--json", "--spool", spoolPath],
            ["spool", "show", id, "--spool", spoolPath], ["spool", "stats", "--spool", spoolPath],
            ["spool", "replay", "--all", "--dry-run", "--spool", spoolPath],
        ]
        var outputs: [String] = []
        for command in commands { outputs.append(await runProcess(binary, command).output) }
        try await relay.stop()
        for command in commands { outputs.append(await runProcess(binary, command).output) }
        #expect(outputs.allSatisfy { !$0.isEmpty })
        #expect(outputs[0].contains("tickets (http://ops:****@127.0.0.1"), "\(outputs[0])")
        for (index, output) in outputs.enumerated() {
            for secret in secrets {
                #expect(!output.contains(secret), "\(commands[index % commands.count]): \(output)")
            }
        }
        await sink.stop()
    }
}
