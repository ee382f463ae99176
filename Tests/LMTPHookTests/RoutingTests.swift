import Foundation
import LMTPHook
import LMTPHookTestSupport
import Testing

/// Routes and targets end to end: LMTP over a real socket, one relay configured from YAML,
/// endpoints on real loopback receivers.
@Suite("Routing to several endpoints")
struct RoutingTests {
    static func relay(_ yaml: String) async throws -> RunningRelay {
        try await RunningRelay.start(
            ConfigFile.parse(yaml, file: "test.yaml") { path in
                readFile(path).map { String(decoding: $0, as: UTF8.self) }
            }.relay
        )
    }

    static func send(
        _ relay: RunningRelay,
        to recipients: [String],
        subject: String = "Routing"
    ) async throws -> [LMTPClientConnection.Reply] {
        let socket = relay.socketPath
        return try await blocking {
            let client = try LMTPClientConnection(unixPath: socket)
            return try client.deliverEach(
                from: "a@example.org",
                to: recipients,
                message: sampleMessage(subject: subject)
            )
        }
    }

    @Test("one message, two recipients, two endpoints: each reply is its own endpoint's answer, in RCPT order")
    func eachRecipientGetsItsEndpointsAnswer() async throws {
        let accepting = try await RecordingSink.start()
        let refusing = try await RecordingSink.start()
        refusing.answer(400)
        let relay = try await Self.relay(
            """
            endpoints:
              - {name: tickets, url: "\(accepting.url)"}
              - {name: chat, url: "\(refusing.url)"}
            routes:
              - {match: support@example.test, endpoint: tickets}
              - {match: alerts@example.test, endpoint: chat}
            """
        )
        let replies = try await Self.send(
            relay,
            to: ["alerts@example.test", "support@example.test", "nobody@example.test"]
        )
        #expect(replies.map(\.code) == [550, 250, 550])
        #expect(replies[0].lines.last?.hasPrefix("5.6.0") == true, "\(replies[0])")
        #expect(replies[2].lines.last?.contains("5.1.1") == true, "unrouted: refused at RCPT: \(replies[2])")
        #expect(accepting.requests.count == 1 && refusing.requests.count == 1)
        let ticket = try json(try #require(accepting.requests.first).body)
        #expect(
            ticket["envelope"].flatMap { ($0 as? [String: Any])?["rcpt_to"] as? [String] } == ["support@example.test"],
            "each endpoint sees only its recipients"
        )
        try await relay.stop()
        await accepting.stop()
        await refusing.stop()
    }

    @Test("fan-out: every endpoint of the route gets the message; a transient failure anywhere gives 4xx")
    func fanOut() async throws {
        let first = try await RecordingSink.start()
        let second = try await RecordingSink.start()
        let relay = try await Self.relay(
            """
            endpoints:
              - {name: one, url: "\(first.url)"}
              - {name: two, url: "\(second.url)"}
            routes:
              - {match: "*", endpoints: [one, two]}
            """
        )
        var replies = try await Self.send(relay, to: ["x@example.test", "y@example.test"])
        #expect(replies.map(\.code) == [250, 250])
        #expect(first.requests.count == 1 && second.requests.count == 1, "one request per endpoint for both recipients")
        second.answer(503)
        // Another message (the same one again would be an MTA retry, which the journal answers).
        replies = try await Self.send(relay, to: ["x@example.test"], subject: "Routing, second message")
        #expect(
            replies.map(\.code) == [451],
            "no spool: the MTA keeps the mail and retries; 'one' is not sent it again then (the journal)"
        )
        try #require(first.requests.count == 2)
        #expect(first.requests[1].headers.first { $0.0.lowercased() == "webhook-id" }?.1 != nil)
        try await relay.stop()
        await first.stop()
        await second.stop()
    }

    @Test("chat formats go out in the target's shape; Discord's URL gets wait=true and its answer must carry an id")
    func chatFormats() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await Self.relay(
            """
            endpoints:
              - {name: slack, url: "\(sink.url)slack/T0/B0/secret", format: slack}
              - {name: discord, url: "\(sink.url)discord/1/token", format: discord}
              - {name: broken-discord, url: "\(sink.url)other/", format: discord}
            routes:
              - {match: slack@example.test, endpoint: slack}
              - {match: discord@example.test, endpoint: discord}
              - {match: broken@example.test, endpoint: broken-discord}
            """
        )
        let replies = try await Self.send(
            relay,
            to: ["slack@example.test", "discord@example.test", "broken@example.test"],
            subject: "<!channel> hi"
        )
        #expect(replies.map(\.code) == [250, 250, 451], "\(replies)")
        #expect(
            replies[2].lines.last?.contains("without 'id'") == true,
            "a 2xx without the saved message is not success: \(replies[2])"
        )
        let slack = try #require(sink.requests.first { $0.path.hasPrefix("/slack/") })
        let slackBody = try json(slack.body)
        #expect(slackBody["blocks"] is [Any])
        #expect(String(decoding: slack.body, as: UTF8.self).contains("&lt;!channel&gt;"))
        let discord = try #require(sink.requests.first { $0.path.hasPrefix("/discord/") })
        #expect(discord.path.hasSuffix("?wait=true"))
        #expect((try json(discord.body)["allowed_mentions"] as? [String: Any])?["parse"] as? [Any] != nil)
        try await relay.stop()
        await sink.stop()
    }

    @Test("a rate limit spaces requests to the endpoint")
    func rateLimit() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await Self.relay(
            """
            endpoints:
              - {name: slow, url: "\(sink.url)", rate_limit: 1/s}
            """
        )
        let started = ContinuousClock.now
        for index in 0..<3 {
            let replies = try await Self.send(relay, to: ["r@example.test"], subject: "rate \(index)")
            #expect(replies.map(\.code) == [250])
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(1_800), "three requests at 1/s (burst 1) take about two seconds: \(elapsed)")
        #expect(sink.requests.count == 3)
        try await relay.stop()
        await sink.stop()
    }

    @Test("a template endpoint renders its body; the plus-tag is available to it")
    func templateEndpoint() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await Self.relay(
            """
            endpoints:
              - name: tickets
                url: "\(sink.url)"
                format: template
                template: '{"title": "{{subject}}", "queue": "{{tag}}", "from": "{{from.address}}"}'
            """
        )
        let replies = try await Self.send(relay, to: ["support+billing@example.test"], subject: "Invoice \"7\"")
        #expect(replies.map(\.code) == [250])
        let body = try json(try #require(sink.requests.first).body)
        #expect(body["title"] as? String == "Invoice \"7\"")
        #expect(body["queue"] as? String == "billing")
        #expect(body["from"] as? String == "a@example.org")
        try await relay.stop()
        await sink.stop()
    }

    @Test("three addresses, three apps, one configuration file: each app receives its own well-formed message")
    func threeAppsFromOneFile() async throws {
        let sink = try await RecordingSink.start()
        let template = Binary.packageRoot.appendingPathComponent("deploy/templates/zammad.json.mustache").path
        let relay = try await Self.relay(
            """
            endpoints:
              - {name: zammad, url: "\(sink.url)zammad/api/v1/tickets", format: template, template_file: "\(template)", attachments: inline}
              - {name: slack, url: "\(sink.url)slack/T0/B0/x", format: slack}
              - {name: archive, url: "\(sink.url)archive"}
            routes:
              - {match: support@example.com, endpoint: zammad}
              - {match: alerts@example.com, endpoint: slack}
              - {match: "*", endpoint: archive}
            """
        )
        let socket = relay.socketPath
        let replies = try await blocking {
            try LMTPClientConnection(unixPath: socket).deliverEach(
                from: "alice@example.org",
                to: ["support+billing@example.com", "alerts@example.com", "ceo@example.com"],
                message: SampleMessage.raw()
            )
        }
        #expect(replies.map(\.code) == [250, 250, 250], "\(replies)")
        let ticket = try json(try #require(sink.requests.first { $0.path.hasPrefix("/zammad/") }).body)
        #expect(ticket["title"] as? String == "Re: Invoice 4711 — please check 🧾")
        #expect(ticket["tags"] as? String == "email,billing")
        let article = try #require(ticket["article"] as? [String: Any])
        #expect((article["attachments"] as? [[String: Any]])?.first?["filename"] as? String == "invoice-4711.pdf")
        let slack = try json(try #require(sink.requests.first { $0.path.hasPrefix("/slack/") }).body)
        #expect((slack["blocks"] as? [[String: Any]])?.first?["type"] as? String == "header")
        let archive = try json(try #require(sink.requests.first { $0.path.hasPrefix("/archive") }).body)
        #expect(archive["schema"] as? Int == 1)
        #expect((archive["envelope"] as? [String: Any])?["rcpt_to"] as? [String] == ["ceo@example.com"])
        #expect(sink.requests.count == 3)
        try await relay.stop()
        await sink.stop()
    }

    @Test("a queued message is retried in its endpoint's format")
    func retryKeepsTheFormat() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let relay = try await Self.relay(
            """
            spool: {path: "\(spool.path)", retry_schedule: [200ms]}
            endpoints:
              - {name: chat, url: "\(sink.url)slack/x", format: slack}
            """
        )
        let replies = try await Self.send(relay, to: ["ops+db@example.test"], subject: "disk full")
        #expect(replies.first?.code == 250)
        #expect(replies.first?.lines.last?.contains("queued as") == true, "\(replies)")
        sink.answer(nil)
        let deadline = ContinuousClock.now + .seconds(10)
        while sink.accepted.isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let body = try json(try #require(sink.accepted.first).body)
        #expect(
            (body["blocks"] as? [[String: Any]])?.first?["type"] as? String == "header",
            "retried as Slack blocks, not payload v1"
        )
        #expect(String(decoding: try #require(sink.accepted.first).body, as: UTF8.self).contains("disk full"))
        try await relay.stop()
        await sink.stop()
    }
}
