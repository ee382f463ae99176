import Delivery
import Foundation
import LMTPHook
import LMTPHookTestSupport
import Spool
import Testing

@Suite("lmtphook spool commands", .serialized)
struct SpoolCommandTests {
    @Test("list, show, stats, replay (skipping a locked entry), drop, and clear errors")
    func commands() async throws {
        let binary = try Binary.require()
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let spoolPath = TemporaryDirectory().file("spool")
        let settings = DeliverySettings(
            retry: RetryPolicy(scheduleMilliseconds: [600_000], jitter: 0),
            breakerThreshold: 100
        )
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: settings)
        for index in 0..<3 {
            let replies = try await blocking {
                try LMTPClientConnection(unixPath: relay.socketPath).deliver(
                    from: "a@example.org",
                    to: ["r\(index)@example.test"],
                    message: sampleMessage(subject: "s\(index)")
                )
            }
            #expect(replies.first?.code == 250)
        }
        let spool = try Spool(path: spoolPath)
        let ids = spool.ids()
        #expect(ids.count == 3)

        let list = await runProcess(binary, ["spool", "list", "--spool", spoolPath])
        #expect(list.status == 0)
        #expect(list.output.split(separator: "\n").count == 3)
        #expect(list.output.contains("attempts 1") && list.output.contains("last HTTP 503"))
        let listJSON = await runProcess(binary, ["spool", "list", "--spool", spoolPath, "--json"])
        let first =
            try JSONSerialization.jsonObject(with: Data(listJSON.output.split(separator: "\n")[0].utf8))
            as? [String: Any]
        #expect(first?["id"] as? String == ids[0])
        #expect(first?["last_status"] as? Int == 503)

        let show = await runProcess(binary, ["spool", "show", ids[0], "--spool", spoolPath])
        #expect(show.status == 0)
        #expect(
            show.output.contains("webhook id:") && show.output.contains("sync  HTTP 503")
                && show.output.contains("<r0@example.test>")
        )
        let raw = await runProcess(binary, ["spool", "show", ids[0], "--raw", "--spool", spoolPath])
        #expect(raw.output.contains("Subject: s0"))
        #expect(await runProcess(binary, ["spool", "stats", "--spool", spoolPath]).output.hasPrefix("queued 3"))

        // Replay everything while one entry is claimed (as if serve were delivering it).
        sink.answer(nil)
        var claim: Spool.Claim? = try spool.claim(ids[1])
        let replay = await runProcess(binary, ["spool", "replay", "--all", "--spool", spoolPath])
        #expect(replay.status == 0, "\(replay.output)")
        #expect(
            replay.output.contains("delivered 2") && replay.output.contains("busy (being delivered by serve) 1"),
            "\(replay.output)"
        )
        #expect(claim != nil)
        claim = nil  // released: the entry can be dropped now
        #expect(spool.ids() == [ids[1]])
        let webhookIDs = sink.requests.compactMap { request in
            request.headers.first { $0.0.lowercased() == "webhook-id" }?.1
        }
        #expect(webhookIDs.count == 5)
        #expect(Set(webhookIDs).count == 3, "replays reuse the original webhook ids")

        #expect(
            await runProcess(binary, ["spool", "drop", ids[1], "--spool", spoolPath]).output.contains(
                "dropped \(ids[1])"
            )
        )
        #expect(spool.ids().isEmpty)
        let unknown = await runProcess(binary, ["spool", "show", "0000000000000000", "--spool", spoolPath])
        #expect(unknown.status == 1 && unknown.output.contains("no spool entry"))
        let missing = await runProcess(binary, ["spool", "list", "--spool", "/nonexistent/spool"])
        #expect(missing.status == 66 && missing.output.contains("no spool at /nonexistent/spool"))
        try await relay.stop()
        await sink.stop()
    }

    @Test("replay of a chat-format entry needs --config, and then sends the endpoint's format")
    func replayWithConfig() async throws {
        let binary = try Binary.require()
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let spoolPath = directory.file("spool")
        let configPath = directory.file("lmtphook.yaml")
        let yaml = """
            spool: {path: "\(spoolPath)", retry_schedule: [1h]}
            endpoints:
              - {name: chat, url: "\(sink.url)slack/x", format: slack}
            """
        writeFile(configPath, yaml, mode: 0o640)
        let relay = try await RunningRelay.start(try ConfigFile.load(path: configPath).relay)
        let socket = relay.socketPath
        let replies = try await blocking {
            try LMTPClientConnection(unixPath: socket).deliver(
                from: "a@example.org",
                to: ["ops@example.test"],
                message: sampleMessage(subject: "queued chat")
            )
        }
        #expect(replies.first?.lines.last?.contains("queued as") == true)
        try await relay.stop()
        sink.answer(nil)

        let refused = await runProcess(binary, ["spool", "replay", "--all", "--spool", spoolPath])
        #expect(refused.status == 1)
        #expect(
            refused.output.contains("endpoint 'chat' is not configured here; the entry needs format slack")
                && refused.output.contains("give --config FILE"),
            "\(refused.output)"
        )
        #expect(sink.accepted.isEmpty, "nothing sent in the wrong format")

        let replayed = await runProcess(
            binary,
            ["spool", "replay", "--all", "--spool", spoolPath, "--config", configPath]
        )
        #expect(replayed.status == 0, "\(replayed.output)")
        let body = try json(try #require(sink.accepted.first).body)
        #expect(body["blocks"] is [Any], "replayed as Slack blocks")
        #expect(try Spool(path: spoolPath).ids().isEmpty)
        await sink.stop()
    }
}
