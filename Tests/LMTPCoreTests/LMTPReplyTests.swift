import LMTPCore
import Testing

/// Replies on the wire: every line at most 512 bytes (RFC 5321 §4.5.3.1.5) whatever text a handler
/// or a client put in them, never a line break or control of their own, cut at character boundaries.
@Suite("LMTP replies on the wire")
struct LMTPReplyTests {
    static let texts: [(name: String, text: String)] = [
        ("1,000 ASCII bytes", String(repeating: "a", count: 1_000)),
        ("CR LF inside the text", "first\r\n250 2.0.0 forged\r\nline"),
        ("three-byte characters across the cut", String(repeating: "\u{20AC}", count: 400)),
        ("four-byte characters across the cut", String(repeating: "\u{1F600}", count: 300)),
        ("C1 controls and separators", "a\u{85}b\u{2028}c\u{7F}d\u{0}e"),
    ]

    @Test(arguments: texts.indices)
    func linesAreBoundedAndClean(_ index: Int) {
        let text = Self.texts[index].text
        for reply in [
            LMTPReply(550, "5.7.1", text), LMTPReply(code: 250, lines: [text, text]), LMTPReply(220, nil, text),
        ] {
            let wire = Array(reply.wireFormat.utf8)
            #expect(String(validating: wire, as: UTF8.self) != nil, "\(Self.texts[index].name): cut inside a character")
            let lines = wire.split(separator: UInt8(ascii: "\n"))
            #expect(lines.count == reply.lines.count, "\(Self.texts[index].name): a line break of its own")
            for line in lines {
                #expect(line.count + 1 <= LMTPReply.maxLineLength, "\(Self.texts[index].name): \(line.count + 1) bytes")
                #expect(line.last == UInt8(ascii: "\r"))
                #expect(!line.dropLast().contains { $0 < 0x20 || $0 == 0x7F })
            }
        }
    }

    @Test func shortTextsAreUnchanged() {
        #expect(LMTPReply(250, "2.1.5", "Ok").wireFormat == "250 2.1.5 Ok\r\n")
        #expect(LMTPReply(code: 250, lines: ["a", "b"]).wireFormat == "250-a\r\n250 b\r\n")
        let exact = String(repeating: "x", count: 512 - "550 5.0.0 ".utf8.count - 2)
        #expect(
            LMTPReply(550, "5.0.0", exact).wireFormat == "550 5.0.0 \(exact)\r\n",
            "a line of exactly 512 bytes is kept whole"
        )
        #expect(LMTPReply(550, "5.0.0", exact + "y").wireFormat.utf8.count == 512, "one byte more is cut to 512")
    }

    @Test func quotingBoundsAndMarksTheCut() {
        #expect(LMTPReply.quoting("FOO") == "FOO")
        #expect(LMTPReply.quoting(String(repeating: "X", count: 65)) == String(repeating: "X", count: 61) + "...")
        #expect(LMTPReply.quoting("a\r\nb\u{1B}[31m") == "a??b?[31m")
        #expect(
            LMTPReply.quoting(String(repeating: "\u{E9}", count: 40), maxBytes: 10) == String(
                repeating: "\u{E9}",
                count: 3
            ) + "..."
        )
    }
}
