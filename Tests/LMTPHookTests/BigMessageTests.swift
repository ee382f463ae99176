import Clocks
import Crypto
import Delivery
import Foundation
import LMTPHook
import LMTPHookTestSupport
import MailCore
import Spool
import Testing
import WebhookClient

#if canImport(Glibc)
import Glibc
#endif

/// Messages bigger than the in-memory limit stay in their file from the final dot to the
/// request: linked into the spool, parsed once for all endpoints, `raw_base64` encoded from the
/// file while it is sent, the signature computed over what is sent.
@Suite("Big messages: kept in files, streamed", .serialized)
struct BigMessageTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    /// A 2.3 MB message: a text part and a 1.6 MB attachment in base64.
    static func message(attachment: [UInt8]) -> [UInt8] {
        let encoded = Data(attachment).base64EncodedString(options: [
            .lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed,
        ])
        return Array(
            """
            From: Big Sender <big@example.org>\r
            To: support@example.test\r
            Subject: the quarterly report\r
            Message-ID: <big-1@example.org>\r
            MIME-Version: 1.0\r
            Content-Type: multipart/mixed; boundary="b1"\r
            \r
            --b1\r
            Content-Type: text/plain; charset=utf-8\r
            \r
            Report attached.\r
            --b1\r
            Content-Type: application/octet-stream; name="report.bin"\r
            Content-Disposition: attachment; filename="report.bin"\r
            Content-Transfer-Encoding: base64\r
            \r
            \(encoded)\r
            --b1--\r

            """.utf8
        )
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    private func header(_ request: WebhookSink.Request, _ name: String) -> String? {
        request.headers.first { $0.0.lowercased() == name }?.1
    }

    @Test(
        "a 2.3 MB message to two endpoints (one inlines attachments): the spool links it, retries stream raw_base64 from the file, signed over what is sent; both documents equal the in-memory rendering"
    )
    func bigMessageFanOutSpooledAndRetried() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let directory = TemporaryDirectory()
        let spoolDirectory = TemporaryDirectory()  // outlives the relay's directory, removed by stop()
        defer { spoolDirectory.remove() }
        let spoolPath = spoolDirectory.file("spool")
        var configuration = try ConfigFile.parse(
            """
            spool: {path: \(spoolPath), retry_schedule: [2s], max_age: 1h}
            delivery: {breaker_failures: 100}
            endpoints:
              - {name: tickets, url: "\(sink.url)tickets", secret: \(Self.secret), attachments: inline, inline_limit: 4M}
              - {name: archive, url: "\(sink.url)archive", secret: \(Self.secret)}
            routes:
              - {match: "@example.test", endpoints: [tickets, archive]}
            """
        ).relay
        configuration.server.session.spillThreshold = 256 * 1024
        // Retries run on a test clock: the test says when they are due.
        let clock = TestClock()
        let relay = try await RunningRelay.start(
            configuration,
            directory: directory,
            clock: DeliveryClock(clock, startingAt: UnixTime.now().milliseconds)
        )
        let attachment = (0..<1_600_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 11) }
        let message = Self.message(attachment: attachment)
        let replies = try await blocking {
            try LMTPClientConnection(unixPath: relay.socketPath).deliver(
                from: "big@example.org",
                to: ["support@example.test"],
                message: message
            )
        }
        #expect(replies.first?.code == 250)
        #expect(replies.first?.lines.last?.contains("queued as") == true, "\(replies)")

        // Queued: two entries (one per endpoint), two names of the one file it arrived in.
        let queue = spoolPath + "/queue"
        let names = try FileManager.default.contentsOfDirectory(atPath: queue).sorted()
        let messages = names.filter { $0.hasSuffix(".eml") }
        #expect(messages.count == 2, "\(names)")
        var inodes = Set<UInt>()
        for name in messages {
            var info = stat()
            #expect(stat("\(queue)/\(name)", &info) == 0)
            inodes.insert(UInt(info.st_ino))
            #expect(Int(info.st_size) == message.count)
        }
        #expect(inodes.count == 1, "linked, not copied")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: spoolPath + "/incoming").isEmpty,
            "the server's name for it is gone"
        )

        sink.answer(nil)
        // The retries come due on the test clock (each endpoint's in turn).
        for _ in 0..<10 where Set(sink.accepted.map(\.path)).count < 2 {
            await clock.advance(by: .seconds(2))
            _ = await sink.waitForAccepted(2, timeout: .seconds(2))
        }
        let byEndpoint = Dictionary(grouping: sink.accepted, by: { $0.path })
        #expect(Set(byEndpoint.keys) == ["/tickets", "/archive"], "\(sink.requests.map(\.path))")
        let signer = try WebhookSigner(secrets: [Self.secret])
        for (path, received) in byEndpoint {
            let request = try #require(received.first)
            let id = try #require(header(request, "webhook-id"))
            let timestamp = try #require(Int64(header(request, "webhook-timestamp") ?? ""))
            #expect(
                header(request, "webhook-signature")
                    == signer.signature(id: id, timestamp: timestamp, body: request.body)
            )
            let document = try json(request.body)
            #expect(Data(base64Encoded: document["raw_base64"] as? String ?? "").map(Array.init) == message)
            let attachments = try #require(document["attachments"] as? [[String: Any]])
            #expect(attachments.count == 1)
            #expect(attachments.first?["sha256"] as? String == Self.hex(attachment))
            #expect(attachments.first?["size"] as? Int == attachment.count)
            let inline = attachments.first?["content_base64"] as? String
            if path == "/tickets" {
                #expect(inline.flatMap { Data(base64Encoded: $0) }.map(Array.init) == attachment)
            } else {
                #expect(inline == nil, "metadata only for this endpoint")
            }
            // The streamed document is the one the same message renders to in memory.
            let endpoint = try #require(
                relay.relay.delivery.endpoint(named: path == "/tickets" ? "tickets" : "archive")
            )
            let envelope = MailEnvelope(mailFrom: "big@example.org", rcptTo: ["support@example.test"], lhlo: "x")
            let inMemory = try endpoint.render(
                webhookID: id,
                receivedAt: UnixTime(milliseconds: 0),
                envelope: envelope,
                raw: message
            ).body.bytes
            var expected = try json(inMemory)
            var got = document
            for key in ["received_at", "envelope"] {
                expected[key] = nil
                got[key] = nil
            }
            func canonical(_ value: Any?) -> Data? {
                try? JSONSerialization.data(withJSONObject: [value ?? NSNull()], options: [.sortedKeys])
            }
            let differing = Set(got.keys).union(expected.keys).filter { canonical(got[$0]) != canonical(expected[$0]) }
            #expect(differing.isEmpty, "\(path): streamed and in-memory documents differ in \(differing.sorted())")
        }
        // A graceful stop lets attempts in flight record their outcome: the spool is final then.
        try await relay.stop()
        #expect(try FileManager.default.contentsOfDirectory(atPath: queue).isEmpty, "entries and their message removed")
        await sink.stop()
    }
}
