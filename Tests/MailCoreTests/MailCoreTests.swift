import Foundation
import MailCore
import Testing

@Suite("Header block")
struct HeaderBlockTests {
    @Test("CRLF and LF-only messages parse the same", arguments: ["\r\n", "\n"])
    func lineEnds(_ newline: String) {
        let text = ["Subject: one", "X-Dup: a", "To: b@example.test,", "\tc@example.test", "X-Dup: b", "", "body", ""]
            .joined(separator: newline)
        let block = HeaderBlock(parsing: Array(text.utf8))
        #expect(block.fields.map(\.name) == ["Subject", "X-Dup", "To", "X-Dup"])
        #expect(block.first("subject")?.text == "one")
        #expect(block.first("TO")?.text == "b@example.test,\tc@example.test")
        #expect(block.all("x-dup").map(\.text) == ["a", "b"])
        #expect(Array(Array(text.utf8)[block.bodyOffset...]) == Array("body\(newline)".utf8))
        #expect(block.problems.isEmpty)
    }

    @Test func mboxFromLineByteOrderMarkAndSpaceBeforeColon() {
        let block = HeaderBlock(
            parsing: [0xEF, 0xBB, 0xBF]
                + Array("From a@b Sat Nov 28 10:00:00 2026\r\nSubject : s\r\nTo: t\r\n\r\n".utf8)
        )
        #expect(block.fields.map(\.name) == ["Subject", "To"])
        #expect(block.first("Subject")?.text == "s")
    }

    @Test("a line that is no header ends the header section (the rest is body)")
    func missingSeparator() {
        let raw = Array("Subject: s\r\nnot a header\r\nmore\r\n".utf8)
        let block = HeaderBlock(parsing: raw)
        #expect(block.fields.map(\.name) == ["Subject"])
        #expect(Array(raw[block.bodyOffset...]) == Array("not a header\r\nmore\r\n".utf8))
        #expect(block.problems == ["missing empty line between header and body"])
    }

    @Test func messageWithoutBodyAndEmptyMessage() {
        let raw = Array("Subject: only headers".utf8)
        #expect(HeaderBlock(parsing: raw).first("Subject")?.text == "only headers")
        #expect(HeaderBlock(parsing: raw).bodyOffset == raw.count)
        #expect(HeaderBlock(parsing: []).fields.isEmpty)
    }

    @Test func eightBitHeaderBytesFallBackToWindows1252AndAreReported() {
        let field = HeaderBlock.Field(name: "Subject", value: [0x52, 0xE9, 0x75, 0x6E, 0x69, 0x6F, 0x6E, 0x20, 0x80])
        var problems: [String] = []
        #expect(field.rawText(problems: &problems) == "Réunion €")
        #expect(problems == ["unencoded 8-bit bytes in header Subject"])
    }
}

@Suite("Time")
struct TimeTests {
    @Test func rfc3339() {
        #expect(UnixTime(milliseconds: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(UnixTime(milliseconds: 1_795_860_000_123).rfc3339 == "2026-11-28T10:00:00.123Z")
    }
}
