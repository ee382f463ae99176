import Foundation
import MailCore
import Testing

@Suite("Header block")
struct HeaderBlockTests {
    @Test("CRLF and LF-only messages parse the same", arguments: ["\r\n", "\n"])
    func lineEnds(_ newline: String) {
        let text = ["Subject: one", "X-Dup: a", "To: b@example.test,", "\tc@example.test", "X-Dup: b", "", "body", ""].joined(separator: newline)
        let block = HeaderBlock(parsing: Array(text.utf8))
        #expect(block.fields.map(\.name) == ["Subject", "X-Dup", "To", "X-Dup"])
        #expect(block.first("subject")?.text == "one")
        #expect(block.first("TO")?.text == "b@example.test,\tc@example.test")
        #expect(block.fields.filter { $0.name == "X-Dup" }.map(\.text) == ["a", "b"])
        #expect(Array(Array(text.utf8)[block.bodyOffset...]) == Array("body\(newline)".utf8))
    }

    @Test func mboxFromLineAndDefectLinesAreSkipped() {
        let block = HeaderBlock(parsing: Array("From a@b Sat Nov 28 10:00:00 2026\r\nSubject: s\r\nthis is no header\r\nTo: t\r\n\r\n".utf8))
        #expect(block.fields.map(\.name) == ["Subject", "To"])
    }

    @Test func messageWithoutBody() {
        let raw = Array("Subject: only headers".utf8)
        let block = HeaderBlock(parsing: raw)
        #expect(block.first("Subject")?.text == "only headers")
        #expect(block.bodyOffset == raw.count)
    }

    @Test func eightBitHeaderBytesAreKeptRaw() {
        let raw: [UInt8] = Array("Subject: ".utf8) + [0xE9, 0x74, 0xE9] + Array("\r\n\r\n".utf8)
        #expect(HeaderBlock(parsing: raw).first("Subject")?.value == [0xE9, 0x74, 0xE9])
    }

    @Test func emptyMessage() {
        let block = HeaderBlock(parsing: [])
        #expect(block.fields.isEmpty)
        #expect(block.bodyOffset == 0)
    }
}

@Suite("Identifiers and time")
struct IdentifierTests {
    @Test func rfc3339() {
        #expect(UnixTime(milliseconds: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(UnixTime(milliseconds: 1_795_860_000_123).rfc3339 == "2026-11-28T10:00:00.123Z")
    }

    @Test func idsSortByTimeAndAreSixteenCharacters() {
        let earlier = MessageIdentifier.make(at: UnixTime(milliseconds: 1_795_860_000_000), random: .max)
        let later = MessageIdentifier.make(at: UnixTime(milliseconds: 1_795_860_000_001), random: 0)
        #expect(earlier.count == 16 && later.count == 16)
        #expect(earlier < later)
        #expect(earlier.allSatisfy { "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains($0) })
        #expect(MessageIdentifier.make() != MessageIdentifier.make())
    }
}

@Suite("Message document (payload v0)")
struct MessageDocumentTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    @Test("matches the golden JSON byte for byte")
    func golden() throws {
        let raw = Array("From: A <a@example.org>\r\nSubject: Caf\u{E9} =?utf-8?q?x?=\r\nMessage-ID:\r\n <abc@example.org>\r\n\r\nhi\r\n".utf8)
        let envelope = MailEnvelope(
            mailFrom: "a@example.org", rcptTo: ["b@example.test", "c@example.test"], lhlo: "mx.example", smtpUTF8: true, body: "8BITMIME",
            client: .init(addr: "192.0.2.1", ident: "4ABC", source: "REMOTE"))
        let document = MessageDocument(id: "01M8GVPMMT48YXJP", receivedAt: UnixTime(milliseconds: 1_795_860_000_123), envelope: envelope, raw: raw)
        let json = String(decoding: try document.jsonBytes(), as: UTF8.self)
        let expected = try String(contentsOf: Self.goldenDirectory.appendingPathComponent("document-v0.json"), encoding: .utf8)
        #expect(json == expected.trimmingCharacters(in: .newlines), "actual:\n\(json)")
    }

    @Test func missingHeadersAreNull() throws {
        let document = MessageDocument(id: "X", receivedAt: UnixTime(milliseconds: 0), envelope: MailEnvelope(mailFrom: "", rcptTo: ["a@b"], lhlo: "l"), raw: Array("no headers here".utf8))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(document.jsonBytes())) as? [String: Any])
        #expect(object["subject"] is NSNull)
        #expect(object["message_id"] is NSNull)
        #expect((object["envelope"] as? [String: Any])?["body"] is NSNull)
    }
}
