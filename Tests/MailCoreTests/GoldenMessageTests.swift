import Foundation
import MailCore
import MessageData
import Testing

/// Hand-written messages, one feature or pitfall each, against reviewed golden JSON.
/// `UPDATE_GOLDEN=1 swift test --filter GoldenMessageTests` rewrites the goldens (review the diff!).
@Suite("Payload v1 golden files")
struct GoldenMessageTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let messages: [String] = {
        let names =
            (try? FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("Messages").path))
            ?? []
        return names.filter { $0.hasSuffix(".eml") }.sorted()
    }()

    static let envelope = MailEnvelope(
        mailFrom: "sender@example.org",
        rcptTo: ["rcpt@example.test"],
        lhlo: "mx.example.test",
        smtpUTF8: true,
        body: "8BITMIME",
        client: .init(
            name: "mail.example.org",
            addr: "192.0.2.1",
            port: "25",
            proto: "ESMTP",
            helo: "mail.example.org",
            ident: "4ABC12",
            source: "REMOTE"
        )
    )

    static func render(_ raw: [UInt8]) -> [UInt8] {
        let id = MessagePayload.id(raw: raw, recipients: envelope.rcptTo, endpoint: "https://hooks.example.net/in")
        return MessagePayload.render(
            id: id,
            receivedAt: UnixTime(milliseconds: 1_795_860_000_000),
            envelope: envelope,
            raw: raw,
            options: PayloadOptions(attachments: .inline(maxBytes: 64), includeRaw: false)
        ).json
    }

    @Test func thereAreAtLeastThirtyMessages() {
        #expect(Self.messages.count >= 30)
    }

    @Test(arguments: messages)
    func matchesGolden(_ name: String) throws {
        let raw = try Array(Data(contentsOf: Self.directory.appendingPathComponent("Messages/\(name)")))
        let json = Self.render(raw)
        let actual = try JSONSerialization.jsonObject(with: Data(json)) as? NSDictionary
        let goldenURL = Self.directory.appendingPathComponent(
            "Golden/\(name.replacingOccurrences(of: ".eml", with: ".json"))"
        )
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            let pretty = try JSONSerialization.data(
                withJSONObject: try #require(actual),
                options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            )
            try (pretty + Data("\n".utf8)).write(to: goldenURL)
        }
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: goldenURL)) as? NSDictionary
        #expect(actual == golden, "\(name): \(String(decoding: json, as: UTF8.self))")
    }

    @Test(arguments: messages)
    func attachmentsReadFromTheMessageAreWhatWasHashed(_ name: String) throws {
        let raw = try Array(Data(contentsOf: Self.directory.appendingPathComponent("Messages/\(name)")))
        let message = ParsedMessage(parsing: raw, inlineAttachmentLimit: Int.max)
        for attachment in message.attachments {
            let streamed = try attachment.encodedContent(in: .bytes(raw)).contents()
            #expect(streamed == attachment.content, "\(name): \(attachment.filename ?? attachment.contentType)")
            #expect(streamed.count == attachment.size)
        }
    }
}
