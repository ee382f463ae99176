import Foundation
import LMTPHook
import LMTPHookTestSupport
import Spool
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Upgrades lose nothing: a spool written by lmtphook 0.1.0 (Fixtures/spool-0.1.0, made by that
/// binary with `make.sh`) is read and delivered by this one; a spool newer than this binary is
/// refused with a clear message and left exactly as it is.
@Suite("Upgrades", .serialized)
struct UpgradeTests {
    static let fixture = Binary.packageRoot.appendingPathComponent("Tests/LMTPHookTests/Fixtures/spool-0.1.0/spool")
        .path

    /// Every file under `path`, relative, sorted.
    static func files(_ path: String) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: path)
        var names: [String] = []
        while let name = enumerator?.nextObject() as? String { names.append(name) }
        return names.sorted()
    }

    /// A copy of the fixture spool in `directory`.
    static func copyFixture(to directory: TemporaryDirectory) throws -> String {
        let spool = directory.file("spool")
        try FileManager.default.copyItem(atPath: fixture, toPath: spool)
        return spool
    }

    @Test(
        "a spool written by 0.1.0 — queued entries with state files, a dead letter, a quarantined entry — is read by this binary: every queued entry delivered with its webhook id, header and signature; the dead letter replayable; quarantine kept; the format recorded"
    )
    func oldSpoolIsDelivered() async throws {
        let binary = try Binary.require()
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let spoolPath = try Self.copyFixture(to: directory)
        #expect(!FileManager.default.fileExists(atPath: spoolPath + "/FORMAT"), "0.1.0 wrote no FORMAT file")
        // What 0.1.0 queued, read straight from the files.
        var queued: [String: SpoolMetadata] = [:]
        for name in Self.files(spoolPath + "/queue") where name.hasSuffix(".msg") {
            let metadata = try #require(Spool.readMetadata(path: spoolPath + "/queue/" + name), "\(name)")
            queued[metadata.webhookID] = metadata
        }
        try #require(queued.count == 5, "the fixture holds five queued entries")
        let inbound = try await RecordingSink.start()
        let alerts = try await RecordingSink.start()
        alerts.respondWithBody("ok")  // Slack's success rule
        let configPath = directory.file("lmtphook.yaml")
        let socket = directory.file("lmtp.sock")
        writeFile(
            configPath,
            """
            listen: [{socket: "\(socket)"}]
            spool: {path: "\(spoolPath)"}
            endpoints:
              - name: inbound
                url: "\(inbound.url)inbound?token=planted-url-token"
                headers: {Authorization: "Bearer planted-header-value"}
                secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
              - name: alerts
                url: "\(alerts.url)alerts"
                format: slack
            routes:
              - {match: {local: "alert*"}, endpoint: alerts}
              - {match: "*", endpoint: inbound}
            """
        )
        let serve = try await ServeProcess.start(["--config", configPath], socket: socket)
        defer { serve.terminate() }
        let toInbound = await inbound.waitFor(4, timeout: .seconds(30))
        let toAlerts = await alerts.waitFor(1, timeout: .seconds(30))
        #expect(toInbound.count == 4 && toAlerts.count == 1, "\(toInbound.count) + \(toAlerts.count) of 5")
        var seen: Set<String> = []
        for request in toInbound + toAlerts {
            let id = try #require(SpoolControlTests.header(request, "webhook-id"))
            let metadata = try #require(queued[id], "webhook id \(id) is one 0.1.0 queued")
            seen.insert(id)
            #expect(request.path.hasPrefix(metadata.endpointName == "alerts" ? "/alerts" : "/inbound"))
        }
        #expect(seen.count == 5, "each queued entry once, under its own webhook id")
        for request in toInbound {
            #expect(SpoolControlTests.header(request, "authorization") == "Bearer planted-header-value")
            #expect(SpoolControlTests.header(request, "webhook-signature")?.hasPrefix("v1,") == true)
            let json = try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]
            #expect(json?["id"] as? String == SpoolControlTests.header(request, "webhook-id"))
        }
        let utf8 = toInbound.first { String(decoding: $0.body, as: UTF8.self).contains("Grüße aus Köln") }
        #expect(utf8 != nil, "the UTF-8 subject arrives decoded")
        let slack = try JSONSerialization.jsonObject(with: Data(try #require(toAlerts.first).body)) as? [String: Any]
        #expect((slack?["text"] as? String)?.contains("Alert: disk full") == true, "\(String(describing: slack))")

        // A graceful stop lets attempts in flight record their outcome before the process exits,
        // so what the spool holds afterwards is final: nothing to wait for.
        try await serve.stop()
        #expect(serve.terminationStatus == 0)
        #expect(
            Self.files(spoolPath + "/queue").filter { $0.hasSuffix(".msg") }.isEmpty,
            "every queued entry completed"
        )
        #expect(Self.files(spoolPath + "/dead") == ["01M8X914FAD3WPAW.msg", "01M8X914FAD3WPAW.state"])
        #expect(Self.files(spoolPath + "/quarantine") == ["01M8X91CS5K6MBAR.msg"])
        #expect(
            readFile(spoolPath + "/FORMAT").map { String(decoding: $0, as: UTF8.self) }
                == "lmtphook spool format \(Spool.format)\n"
        )

        // The dead letter, with the history 0.1.0 recorded, replayed with the configuration's
        // header (no daemon now: the command runs the engine itself from --config).
        let show = await runProcess(binary, ["spool", "show", "01M8X914FAD3WPAW", "--spool", spoolPath])
        #expect(show.status == 0, "\(show.output)")
        #expect(show.output.contains("older than 2 s"), "the reason 0.1.0 recorded: \(show.output)")
        let replay = await runProcess(
            binary,
            ["spool", "replay", "--dead", "--all", "--spool", spoolPath, "--config", configPath]
        )
        #expect(replay.status == 0, "\(replay.output)")
        let all = inbound.requests
        try #require(all.count == 5, "the replay is one more request")
        #expect(SpoolControlTests.header(all[4], "authorization") == "Bearer planted-header-value")
        #expect(SpoolControlTests.header(all[4], "webhook-signature")?.hasPrefix("v1,") == true)
        #expect(String(decoding: all[4].body, as: UTF8.self).contains("Dead letter"))
        #expect(Self.files(spoolPath + "/dead").isEmpty, "the replayed dead letter is done")
        await inbound.stop()
        await alerts.stop()
    }

    @Test(
        "a spool of a newer format is refused by serve and by every spool command with a message that says so; nothing in it is touched"
    )
    func newerSpoolIsRefused() async throws {
        let binary = try Binary.require()
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let spoolPath = try Self.copyFixture(to: directory)
        writeFile(spoolPath + "/FORMAT", "lmtphook spool format \(Spool.format + 1)\n")
        let before = Self.files(spoolPath)
        let sink = try await RecordingSink.start()
        let socket = directory.file("lmtp.sock")
        let serve = await runProcess(
            binary,
            ["serve", "--socket", socket, "--spool", spoolPath, "--webhook", sink.url]
        )
        #expect(serve.status != 0)
        #expect(
            serve.output.contains("spool of format \(Spool.format + 1), written by a newer lmtphook"),
            "\(serve.output)"
        )
        let entry = try #require(Self.files(spoolPath + "/queue").first { $0.hasSuffix(".msg") }).dropLast(4)
        for command in [
            ["list"], ["list", "--dead"], ["stats"], ["show", String(entry)], ["replay", "--all"],
            ["drop", String(entry)],
        ] {
            let result = await runProcess(binary, ["spool"] + command + ["--spool", spoolPath])
            #expect(result.status != 0, "spool \(command.joined(separator: " ")): \(result.output)")
            #expect(result.output.contains("written by a newer lmtphook"), "\(command): \(result.output)")
        }
        #expect(Self.files(spoolPath) == before, "nothing created, moved or removed")
        #expect(sink.requests.isEmpty)
        await sink.stop()
    }
}
