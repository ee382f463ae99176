import Foundation
import MailCore
import Testing

/// A small deterministic generator (SplitMix64) so failures reproduce.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Parser properties")
struct PropertyTests {
    /// Fragments that steer random input into the parser's interesting paths.
    static let fragments: [[UInt8]] = [
        "\r\n", "\n", "\r", "--", "--b", "--b--", "Content-Type: multipart/mixed; boundary=b\r\n",
        "Content-Type: multipart/alternative; boundary=\"b\"\r\n",
        "Content-Type: text/html; charset=iso-2022-jp\r\n", "Content-Transfer-Encoding: base64\r\n",
        "Content-Transfer-Encoding: quoted-printable\r\n",
        "Subject: ", "From: ", "To: ", "=?utf-8?b?", "=?iso-2022-jp?q?", "?=", "=", "=3D", "<", ">", "\"", "(", ")",
        ",", ":", ";", "@",
        "Content-Disposition: attachment; filename*0*=utf-8''%E2; filename*1=x\r\n", "<script>", "&#x1F600;", "&amp",
        "\u{1B}$B", " ", "\t",
        "Date: 31 Feb 99 25:61 +9999\r\n", "message/rfc822", "\r\n\r\n",
    ].map { Array($0.utf8) }

    static func randomMessage(_ random: inout SeededRandom) -> [UInt8] {
        var bytes: [UInt8] = []
        let pieces = Int.random(in: 0...200, using: &random)
        for _ in 0..<pieces {
            if Bool.random(using: &random) {
                bytes += fragments.randomElement(using: &random)!
            } else {
                for _ in 0..<Int.random(in: 1...12, using: &random) {
                    bytes.append(UInt8.random(in: 0...255, using: &random))
                }
            }
        }
        return bytes
    }

    static func render(_ raw: [UInt8]) -> [UInt8] {
        MessagePayload.render(
            id: "0000000000000000000000000",
            receivedAt: UnixTime(milliseconds: 0),
            envelope: MailEnvelope(mailFrom: "a@b", rcptTo: ["c@d"], lhlo: "x"),
            raw: raw,
            options: PayloadOptions(attachments: .inline(maxBytes: 100))
        ).json
    }

    @Test("arbitrary bytes never crash the parser and always give valid JSON")
    func arbitraryBytes() throws {
        var random = SeededRandom(state: 20_261_128)
        for round in 0..<3000 {
            let raw = Self.randomMessage(&random)
            let json = Self.render(raw)
            #expect((try? JSONSerialization.jsonObject(with: Data(json))) is [String: Any], "round \(round)")
        }
    }

    @Test("mutated golden messages (flipped bytes, truncation, duplication) never crash the parser")
    func mutatedMessages() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Messages")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".eml") }
            .sorted()
        var random = SeededRandom(state: 42)
        for name in names {
            let original = try Array(Data(contentsOf: directory.appendingPathComponent(name)))
            for _ in 0..<30 {
                var raw = original
                switch Int.random(in: 0..<4, using: &random) {
                case 0:
                    for _ in 0..<8 where !raw.isEmpty {
                        raw[Int.random(in: 0..<raw.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    }
                case 1: raw = Array(raw.prefix(Int.random(in: 0...raw.count, using: &random)))
                case 2:
                    if !raw.isEmpty {
                        let cut = Int.random(in: 0..<raw.count, using: &random)
                        raw.insert(contentsOf: raw[cut...].prefix(200), at: cut)
                    }
                default: raw.removeAll { _ in Int.random(in: 0..<20, using: &random) == 0 }
                }
                #expect((try? JSONSerialization.jsonObject(with: Data(Self.render(raw)))) is [String: Any], "\(name)")
            }
        }
    }

    @Test("pathological inputs stay fast (linear work)")
    func pathologicalInputs() {
        let cases: [[UInt8]] = [
            Array("Subject: ".utf8) + Array(String(repeating: "=?a?q?", count: 100_000).utf8) + [
                0x0D, 0x0A, 0x0D, 0x0A,
            ],
            Array("Content-Type: text/html\r\n\r\n".utf8) + Array(String(repeating: "<a ", count: 100_000).utf8),
            Array("To: ".utf8) + Array(String(repeating: "(((", count: 50_000).utf8) + [0x0D, 0x0A, 0x0D, 0x0A],
            Array(String(repeating: "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n", count: 2_000).utf8),
            Array("X: y\r\n".utf8) + [UInt8](repeating: 0x20, count: 1_000_000),
        ]
        for raw in cases {
            let started = ContinuousClock.now
            _ = Self.render(raw)
            #expect(ContinuousClock.now - started < .seconds(20))
        }
    }

    @Test("a header encoded as RFC 2047 words decodes to the original text")
    func encodedWordRoundTrip() {
        let pool = Array("aZ09 .,;:!?\"'()<>@=_-+/\\ äöüßéèçñ€£ Привет мир 日本語のテキスト 中文 한국어 עברית العربية 🚀👍🏽👨‍👩‍👧 e\u{301}")
        var random = SeededRandom(state: 7)
        for _ in 0..<500 {
            let text = String(
                (0..<Int.random(in: 1...120, using: &random)).map { _ in pool.randomElement(using: &random)! }
            )
            var problems: [String] = []
            let decoded = EncodedWords.decode(EncodedWords.encode(text), problems: &problems)
            #expect(decoded == text)
            #expect(problems.isEmpty)
        }
    }
}

@Suite("Parser bounds")
struct ParserBoundsTests {
    @Test("multipart nesting deeper than 32 is kept as one opaque part, reported, and the parse stays linear")
    func deepNesting() {
        var message = ""
        for level in 0..<40 {
            message += "Content-Type: multipart/mixed; boundary=\"b\(level)\"\r\n\r\n--b\(level)\r\n"
        }
        message += "Content-Type: text/plain\r\n\r\ninnermost\r\n"
        for level in (0..<40).reversed() { message += "--b\(level)--\r\n" }
        let parsed = ParsedMessage(parsing: Array(message.utf8))
        #expect(parsed.problems.contains { $0.contains("multipart nesting deeper than \(MIMEParser.maximumDepth)") })
        var parser = MIMEParser(message: Array(message.utf8))
        var depth = 0
        var part = parser.parse()
        while let child = part.children.first {
            depth += 1
            part = child
        }
        #expect(depth == MIMEParser.maximumDepth)
        #expect(part.mediaType == "application/octet-stream")
    }

    @Test("at most 10,000 header fields are split out; the rest are reported, the body is still found")
    func headerFieldCount() {
        var message = "Subject: many fields\r\n"
        for index in 0..<12_000 { message += "X-Field-\(index): value \(index)\r\n" }
        message += "\r\nthe body\r\n"
        let parsed = ParsedMessage(parsing: Array(message.utf8))
        #expect(parsed.headers.count == HeaderBlock.maximumFields)
        #expect(
            parsed.headers.first?.name == "Subject" && parsed.headers.last?.name == "X-Field-9998",
            "the first fields, in order"
        )
        #expect(parsed.problems.contains { $0.contains("more than \(HeaderBlock.maximumFields) header fields") })
        #expect(parsed.text?.contains("the body") == true, "the header section still ends where it ends")
    }

    @Test("at most 1,000 parts are split out of one message; the rest is reported")
    func partCount() {
        var message = "Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"
        for index in 0..<1500 { message += "--x\r\nContent-Type: text/plain\r\n\r\npart \(index)\r\n" }
        message += "--x--\r\n"
        let parsed = ParsedMessage(parsing: Array(message.utf8))
        #expect(parsed.problems.contains { $0.contains("more than \(MIMEParser.maximumParts) MIME parts") })
    }
}
