import LMTPCore
import Testing

private let prelude = "LHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"

/// Every end-of-data variant from the SMTP-smuggling research that is *not* CRLF.CRLF.
let smugglingSeparators: [String] = [
    "\n.\n", "\n.\r", "\r.\n", "\r.\r", "\n.\r\n", "\r.\r\n", "\r\n.\r\r\n", "\r\r\n.\r\r\n", "\r\n\u{0}.\r\n",
    "\r\n.\n", "\n..\n",
]

@Suite("LMTP session: DATA")
struct LMTPSessionDataTests {
    @Test("smuggled end-of-data stays content", arguments: smugglingSeparators)
    func smuggling(_ separator: String) throws {
        var harness = SessionHarness()
        let smuggled =
            "MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@d.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
        harness.feed(prelude + "Subject: real\r\n\r\nreal" + separator + smuggled + ".\r\n")
        #expect(harness.delivered.count == 1)
        let content = String(decoding: try #require(harness.delivered.first).data, as: UTF8.self)
        #expect(content.contains("MAIL FROM:<evil@x.test>"))
        #expect(content.contains("smuggled\r\n"))
        #expect(harness.summary.last?.hasPrefix("250 2.0.0 <c@d.test>") == true)
        #expect(harness.summary.count == 5)
    }

    @Test(
        "dot-unstuffing",
        arguments: [
            ("..x\r\n", ".x\r\n"), (".x\r\n", "x\r\n"), ("..\r\n", ".\r\n"), ("a\r\n...\r\n", "a\r\n..\r\n"),
            ("a.b\r\n", "a.b\r\n"), ("x\n.y\r\n", "x\n.y\r\n"), (".\r\r\n", "\r\r\n"),
        ]
    )
    func unstuffing(_ sent: String, _ expected: String) throws {
        var harness = SessionHarness()
        harness.feed(prelude + sent + ".\r\n")
        let message = try #require(harness.delivered.first)
        #expect(message.data == Array(expected.utf8))
    }

    @Test func emptyMessage() throws {
        var harness = SessionHarness()
        harness.feed(prelude + ".\r\n")
        #expect(try #require(harness.delivered.first).data.isEmpty)
    }

    @Test func bytesAfter354AndAfterTheDotAreKept() {
        var harness = SessionHarness()
        harness.feed(prelude + "x\r\n.\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<e@d.test>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n")
        #expect(harness.delivered.map { $0.data } == [Array("x\r\n".utf8), Array("y\r\n".utf8)])
        #expect(harness.summary.last == "221 2.0.0 Bye")
    }

    @Test("end of data split across reads at every position")
    func endOfDataSplit() {
        let text = prelude + "line one\r\n..two\r\n.\r\nNOOP\r\n"
        let bytes = Array(text.utf8)
        for cut in 1..<bytes.count {
            var harness = SessionHarness()
            harness.feed(Array(bytes[..<cut]))
            harness.feed(Array(bytes[cut...]))
            #expect(harness.delivered.map { $0.data } == [Array("line one\r\n.two\r\n".utf8)], "cut at \(cut)")
            #expect(harness.summary.last == "250 2.0.0 Ok")
        }
    }

    @Test func eightBitAndNULBytesPassThrough() throws {
        var harness = SessionHarness()
        let body: [UInt8] = [0x41, 0x00, 0xFF, 0xC3, 0x28, 0x0D, 0x0A]
        harness.feed(Array(prelude.utf8) + body + Array(".\r\n".utf8))
        #expect(try #require(harness.delivered.first).data == body)
    }

    @Test("message exactly at the limit is delivered; one byte over is 552 per recipient")
    func sizeLimit() throws {
        let config = LMTPConfiguration(hostname: "lmtp.test", maxMessageSize: 2048)
        let line = String(repeating: "a", count: 1022) + "\r\n"  // 1024 bytes
        var atLimit = SessionHarness(configuration: config)
        atLimit.feed(prelude + line + line + ".\r\n")
        #expect(try #require(atLimit.delivered.first).data.count == 2048)

        var over = SessionHarness(configuration: config)
        over.feed(
            "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@d.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
                + line + line + "x\r\n.\r\nNOOP\r\n"
        )
        #expect(over.delivered.isEmpty)
        #expect(
            Array(over.summary.suffix(4)) == [
                "552 5.3.4 <c@d.test> Message size exceeds fixed limit",
                "552 5.3.4 <e@d.test> Message size exceeds fixed limit",
                "552 5.3.4 <c@d.test> Message size exceeds fixed limit", "250 2.0.0 Ok",
            ]
        )
    }

    @Test("no reply at all until the dot, even far over the limit")
    func noEarlyReplyWhenTooBig() {
        var harness = SessionHarness(configuration: LMTPConfiguration(maxMessageSize: 1024))
        harness.feed(prelude)
        let before = harness.replies.count
        harness.feed(String(repeating: "x", count: 100_000) + "\r\n")
        #expect(harness.replies.count == before)
        harness.feed(".\r\n")
        #expect(harness.summary.last?.hasPrefix("552 5.3.4") == true)
    }

    @Test("1000 recipients are accepted, the 1001st gets 452, and there are 1000 replies after the dot")
    func thousandRecipients() {
        var harness = SessionHarness()
        var input = "LHLO c\r\nMAIL FROM:<a@b.test>\r\n"
        for index in 0...1000 { input += "RCPT TO:<r\(index)@d.test>\r\n" }
        harness.feed(input + "DATA\r\nx\r\n.\r\n")
        let summary = harness.summary
        #expect(summary.filter { $0.hasPrefix("250 2.1.5") }.count == 1000)
        #expect(summary.contains("452 4.5.3 Error: too many recipients"))
        let finals = summary.filter { $0.hasPrefix("250 2.0.0 <") }
        #expect(finals.count == 1000)
        #expect(finals.first == "250 2.0.0 <r0@d.test> Delivered id=T1")
        #expect(finals.last == "250 2.0.0 <r999@d.test> Delivered id=T1")
        #expect(harness.delivered.first?.recipients.count == 1000)
    }

    @Test("disconnect in DATA: no delivery")
    func disconnectInData() {
        var harness = SessionHarness()
        harness.feed(prelude + "half a message\r\n")
        harness.endOfInput()
        #expect(harness.delivered.isEmpty)
        #expect(harness.session.lostInDataBytes == 16)
        #expect(harness.closed)
    }

    @Test("disconnect right after the dot: the message is still delivered")
    func disconnectAfterDot() {
        var harness = SessionHarness()
        harness.session.receive(Array((prelude + "x\r\n.\r\n").utf8))
        harness.session.receiveEndOfInput()
        harness.drain()
        #expect(harness.session.lostInDataBytes == nil)
        #expect(harness.delivered.count == 1)
        #expect(harness.closed)
    }

    @Test func xforwardReachesTheMessageAndIsResetAfterIt() throws {
        var harness = SessionHarness()
        harness.feed(
            "LHLO c\r\nXFORWARD NAME=mx.example ADDR=192.0.2.7 PORT=[UNAVAILABLE]\r\nXFORWARD IDENT=ABC123 HELO=he+20llo SOURCE=REMOTE\r\n"
        )
        harness.feed("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n")
        harness.feed("MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\ny\r\n.\r\n")
        #expect(harness.delivered.count == 2)
        let client = try #require(harness.delivered.first).client
        #expect(
            client
                == LMTPClientInfo(
                    name: "mx.example",
                    address: "192.0.2.7",
                    port: nil,
                    helo: "he llo",
                    ident: "ABC123",
                    source: "REMOTE"
                )
        )
        #expect(harness.delivered[1].client.isEmpty)
    }

    @Test func envelopeDetails() throws {
        var harness = SessionHarness()
        harness.feed(
            "LHLO relay.test\r\nMAIL FROM:<@hop.test:a@b.test> SIZE=3 BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<c@d.test> ORCPT=rfc822;C@D.test\r\nDATA\r\nx\r\n.\r\n"
        )
        let message = try #require(harness.delivered.first)
        #expect(message.lhloName == "relay.test")
        #expect(message.sender == .mailbox(LMTPMailbox(localPart: "a", domain: "b.test")))
        #expect(message.declaredSize == 3)
        #expect(message.bodyType == .eightBitMIME)
        #expect(message.smtpUTF8)
        #expect(
            message.recipients == [
                LMTPRecipient(
                    mailbox: LMTPMailbox(localPart: "c", domain: "d.test"),
                    originalRecipient: "rfc822;C@D.test"
                )
            ]
        )
    }
}
