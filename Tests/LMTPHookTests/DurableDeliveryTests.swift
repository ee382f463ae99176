import Delivery
import Foundation
import LMTPCore
import LMTPHook
import LMTPHookTestSupport
import Spool
import Testing
import WebhookClient

#if canImport(Glibc)
import Glibc
#endif

private let fastRetries = DeliverySettings(
    syncBudget: .seconds(5),
    retry: RetryPolicy(scheduleMilliseconds: [200], maxAgeMilliseconds: 60_000, jitter: 0),
    breakerThreshold: 100
)

private func send(
    _ relay: RunningRelay,
    to recipients: [String] = ["b@example.test"],
    subject: String = "Hello"
) async throws -> [LMTPClientConnection.Reply] {
    try await blocking {
        try LMTPClientConnection(unixPath: relay.socketPath).deliver(
            from: "a@example.org",
            to: recipients,
            message: sampleMessage(subject: subject)
        )
    }
}

private func header(_ request: WebhookSink.Request, _ name: String) -> String? {
    request.headers.first { $0.0.lowercased() == name }?.1
}

@Suite("Durable delivery: sync budget, spool, retries, signing", .serialized)
struct DurableDeliveryTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    @Test("503 → 250 queued; when the receiver recovers the retry delivers the same id, signed anew")
    func transientFailureIsQueuedAndRetried() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let spoolPath = TemporaryDirectory().file("spool")
        let relay = try await RunningRelay.start(
            webhookURL: sink.url,
            spool: spoolPath,
            delivery: fastRetries,
            secrets: [Self.secret]
        )
        let replies = try await send(relay, to: ["b@example.test", "c@example.test"])
        #expect(replies.map(\.code) == [250, 250])
        #expect(replies.allSatisfy { $0.lines.last?.contains("queued as") == true })
        let spool = try Spool(path: spoolPath)
        #expect(spool.ids().count == 1)
        sink.answer(nil)
        let requests = await sink.waitFor(2)
        #expect(requests.count >= 2)
        let deadline = ContinuousClock.now + .seconds(5)
        while !spool.ids().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(spool.ids().isEmpty)
        let ids = Set(requests.compactMap { header($0, "webhook-id") })
        #expect(ids.count == 1, "the webhook id is stable across attempts")
        let signer = try WebhookSigner(secrets: [Self.secret])
        for request in requests {
            let timestamp = try #require(Int64(header(request, "webhook-timestamp") ?? ""))
            #expect(
                header(request, "webhook-signature")
                    == signer.signature(id: ids.first!, timestamp: timestamp, body: request.body)
            )
            #expect(try json(request.body)["id"] as? String == ids.first)
        }
        try await relay.stop()
        await sink.stop()
    }

    @Test("no answer within the sync budget → 250 queued at once; a late success completes the entry (no second POST)")
    func budgetExceededThenLateSuccess() async throws {
        let sink = try await RecordingSink.start()
        let answerDelay = 4_000  // ms; the sync budget is 300 ms and the first retry is due after 10 minutes
        sink.answer(200, afterMilliseconds: answerDelay)
        let spoolPath = TemporaryDirectory().file("spool")
        var settings = fastRetries
        settings.syncBudget = .milliseconds(300)
        settings.retry = RetryPolicy(scheduleMilliseconds: [600_000], jitter: 0)
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: settings)
        let started = ContinuousClock.now
        let replies = try await send(relay)
        #expect(ContinuousClock.now - started < .milliseconds(answerDelay - 1_000), "answered long before the receiver")
        #expect(replies.first?.code == 250)
        #expect(replies.first?.lines.last?.contains("queued as") == true)
        let spool = try Spool(path: spoolPath)
        #expect(spool.ids().count == 1)
        // The event, not a sleep: the entry completes when the receiver's late 2xx arrives.
        let deadline = started + .milliseconds(answerDelay) + .seconds(20)
        while !spool.ids().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(spool.ids().isEmpty, "the late 2xx completed the entry")
        #expect(
            ContinuousClock.now - started >= .milliseconds(answerDelay),
            "completed by the receiver's answer, not before it"
        )
        #expect(sink.requests.count == 1, "no second POST")
        try await relay.stop()
        await sink.stop()
    }

    @Test(
        "permanent answers bounce with the right code and nothing is queued",
        arguments: [
            (404, "550 5.1.1"), (410, "550 5.1.1"), (413, "552 5.3.4"), (422, "550 5.6.0"), (403, "550 5.7.1"),
            (301, "550 5.4.0"), (418, "550 5.0.0"),
        ]
    )
    func permanentFailures(_ status: Int, _ expected: String) async throws {
        let sink = try await RecordingSink.start()
        sink.answer(status)
        let spoolPath = TemporaryDirectory().file("spool")
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: fastRetries)
        let replies = try await send(relay)
        let reply = try #require(replies.first)
        #expect("\(reply.code) \(reply.lines.last ?? "")".hasPrefix(expected + " <b@example.test> "), "\(reply)")
        #expect(try Spool(path: spoolPath).ids().isEmpty)
        try await relay.stop()
        await sink.stop()
    }

    @Test("transient answers are queued", arguments: [408, 425, 429, 500, 502, 503, 504])
    func transientStatuses(_ status: Int) async throws {
        let sink = try await RecordingSink.start()
        sink.answer(status)
        let spoolPath = TemporaryDirectory().file("spool")
        var settings = fastRetries
        settings.retry = RetryPolicy(scheduleMilliseconds: [60_000], jitter: 0)
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: settings)
        #expect(try await send(relay).map(\.code) == [250])
        #expect(try Spool(path: spoolPath).ids().count == 1)
        try await relay.stop()
        await sink.stop()
    }

    @Test("the spool cannot take the message → 451 4.3.0, nothing claimed, and the daemon keeps serving")
    func spoolFailureIs451() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let spoolPath = TemporaryDirectory().file("spool")
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: fastRetries)
        // Break the spool: its tmp/ directory becomes a file, so no entry can be written.
        try FileManager.default.removeItem(atPath: spoolPath + "/tmp")
        writeFile(spoolPath + "/tmp", "not a directory")
        let replies = try await send(relay)
        #expect(replies.first?.code == 451)
        #expect(replies.first?.lines.last?.hasPrefix("4.3.0 <b@example.test> cannot queue message") == true)
        #expect(try Spool(path: spoolPath).ids().isEmpty, "nothing claimed")
        // Repair: the next message is queued again, without a restart.
        try FileManager.default.removeItem(atPath: spoolPath + "/tmp")
        try FileManager.default.createDirectory(atPath: spoolPath + "/tmp", withIntermediateDirectories: false)
        #expect(try await send(relay).first?.code == 250)
        try await relay.stop()
        await sink.stop()
    }

    @Test("circuit breaker: after repeated failures new mail is queued without an attempt")
    func circuitBreaker() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let spoolPath = TemporaryDirectory().file("spool")
        var settings = fastRetries
        settings.breakerThreshold = 2
        settings.breakerCooldown = .seconds(30)
        settings.retry = RetryPolicy(scheduleMilliseconds: [60_000], jitter: 0)
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: settings)
        _ = try await send(relay, subject: "one")
        _ = try await send(relay, subject: "two")
        #expect(sink.requests.count == 2)
        #expect(relay.relay.delivery.circuitOpen("default"))
        let replies = try await send(relay, subject: "three")
        #expect(replies.first?.code == 250)
        #expect(replies.first?.lines.last?.contains("circuit open") == true)
        #expect(sink.requests.count == 2, "no attempt while the circuit is open")
        #expect(try Spool(path: spoolPath).ids().count == 3)
        try await relay.stop()
        await sink.stop()
    }

    @Test("past the maximum age an entry becomes a dead letter, kept with its history")
    func deadLetter() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let spoolPath = TemporaryDirectory().file("spool")
        var settings = fastRetries
        settings.retry = RetryPolicy(scheduleMilliseconds: [150], maxAgeMilliseconds: 600, jitter: 0)
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: settings)
        #expect(try await send(relay).first?.code == 250)
        let spool = try Spool(path: spoolPath)
        let deadline = ContinuousClock.now + .seconds(5)
        while spool.ids(dead: true).isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let dead = try #require(spool.ids(dead: true).first)
        let entry = try spool.read(dead)
        #expect(entry.isDead)
        #expect(entry.state.deadReason?.contains("gave up") == true)
        #expect(entry.state.attempts.count >= 2)
        #expect(entry.state.attempts.allSatisfy { $0.status == 503 })
        #expect(spool.ids().isEmpty)
        try await relay.stop()
        await sink.stop()
    }

    @Test("queued entries survive a restart and are delivered by the next process")
    func restartDeliversQueuedEntries() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let spoolPath = TemporaryDirectory().file("spool")
        var settings = fastRetries
        settings.retry = RetryPolicy(scheduleMilliseconds: [60_000], jitter: 0)
        let first = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: settings)
        #expect(try await send(first, subject: "survivor").map(\.code) == [250])
        try await first.stop()
        #expect(sink.requests.count == 1, "the first process tried once (503) and stopped")
        #expect(sink.accepted.isEmpty)
        // Due now for the next process.
        let spool = try Spool(path: spoolPath)
        let id = try #require(spool.ids().first)
        var state = try #require(spool.state(id))
        state.nextAttemptMilliseconds = 0
        try spool.writeState(id, state)
        sink.answer(nil)
        let second = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: fastRetries)
        let requests = await sink.waitFor(2)
        // The first process is gone: a second request, accepted, can only be the new process's.
        try #require(requests.count == 2, "the restarted process posted the queued entry")
        #expect(try json(requests[1].body)["subject"] as? String == "survivor")
        #expect(sink.accepted.count == 1)
        #expect(header(requests[1], "webhook-id") == header(requests[0], "webhook-id"), "the same message, the same id")
        let deadline = ContinuousClock.now + .seconds(5)
        while !spool.ids().isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(spool.ids().isEmpty)
        #expect(sink.requests.count == 2, "delivered once")
        try await second.stop()
        await sink.stop()
    }

    /// Symptom 7: spill files were named `lmtp-incoming-PID-N`; in a container `serve` is PID 1 on
    /// every start, so a file an earlier process left behind (or any file with that name) made
    /// every large message fail with `451 … File exists`.
    @Test("files named as an earlier process with the same PID named its spill files do not make large messages fail")
    func spillNamesDoNotCollideAcrossProcesses() async throws {
        let sink = try await RecordingSink.start()
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let relay = try await RunningRelay.start(
            webhookURL: sink.url,
            session: LMTPConfiguration(hostname: "relay.test", spillThreshold: 64 * 1024),
            spool: spool.path
        )
        // What an earlier process with this PID would have left (created after start-up
        // recovery, as a second process on the same spool directory would).
        let incoming = spool.file("incoming")
        for number in 1...50 { writeFile("\(incoming)/lmtp-incoming-\(getpid())-\(number)", "left behind") }
        let body = String(repeating: String(repeating: "s", count: 78) + "\r\n", count: 3000)  // 240 KB: spilled
        let socket = relay.socketPath
        for index in 0..<3 {
            let replies = try await blocking {
                try LMTPClientConnection(unixPath: socket).deliver(
                    from: "a@example.org",
                    to: ["b@example.test"],
                    message: Array("Subject: big \(index)\r\n\r\n\(body)".utf8)
                )
            }
            #expect(replies.map(\.code) == [250], "\(replies)")
        }
        #expect(sink.accepted.count == 3)
        try await relay.stop()
        await sink.stop()
    }
}
