import LMTPCore
import Testing

@Suite("LMTP session: limits, timeouts, shutdown")
struct LMTPSessionLimitsTests {
    @Test func lhloReplyFitsEximsBuffer() {
        let reply = LMTPSession(configuration: LMTPConfiguration(hostname: String(repeating: "h", count: 64))).lhloReply
        #expect(reply.wireBytes.count < 240)
        #expect(
            reply.lines == [
                String(repeating: "h", count: 64), "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8",
                "SIZE 52428800",
                "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE",
            ]
        )
        #expect(reply.wireFormat.hasPrefix("250-hhhh"))
        #expect(reply.wireFormat.hasSuffix("\r\n250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"))
    }

    @Test func greetingHasNoEnhancedCode() {
        #expect(
            LMTPSession(configuration: LMTPConfiguration(hostname: "h.test")).greeting.wireFormat
                == "220 h.test LMTP ready\r\n"
        )
    }

    @Test("a command line of exactly 4096 bytes is read; 4097 is 500 5.5.2 and the session goes on")
    func commandLineLimit() {
        let atLimit = "NOOP " + String(repeating: "x", count: 4096 - 7) + "\r\n"
        let over = "NOOP " + String(repeating: "x", count: 4096 - 6) + "\r\n"
        #expect(atLimit.utf8.count == 4096)
        var harness = SessionHarness()
        harness.feed(atLimit + over + "NOOP\r\n")
        #expect(harness.summary == ["250 2.0.0 Ok", "500 5.5.2 Error: command too long", "250 2.0.0 Ok"])
    }

    @Test("a megabyte without a line end is discarded in bounded memory, then the session goes on")
    func hugeLineDrip() {
        var harness = SessionHarness()
        let chunk = [UInt8](repeating: 0x41, count: 64 * 1024)
        for _ in 0..<16 { harness.feed(chunk) }
        #expect(harness.replies.isEmpty)
        harness.feed("\r\nNOOP\r\n")
        #expect(harness.summary == ["500 5.5.2 Error: command too long", "250 2.0.0 Ok"])
    }

    @Test("after 20 errors: 421 4.7.0 and close")
    func errorBudget() {
        var harness = SessionHarness()
        harness.feed(String(repeating: "BOGUS\r\n", count: 25))
        #expect(harness.summary.count == 21)
        #expect(harness.summary.prefix(20).allSatisfy { $0.hasPrefix("500 5.5.2") })
        #expect(harness.summary.last == "421 4.7.0 lmtp.test Error: too many errors")
        #expect(harness.closed)
    }

    @Test func policyRejectionsDoNotCountAsErrors() {
        var harness = SessionHarness()
        harness.feed(
            "LHLO c\r\nMAIL FROM:<a@b.test>\r\n" + String(repeating: "RCPT TO:<reject@d.test>\r\n", count: 30)
                + "RSET\r\n"
        )
        #expect(!harness.closed)
        #expect(harness.summary.last == "250 2.0.0 Ok")
    }

    @Test func idleTimeout() {
        var harness = SessionHarness()
        harness.feed("LHLO c\r\nMAIL FROM:<a@b.test>\r\n")
        harness.session.idleTimeout()
        harness.drain()
        #expect(harness.summary.last == "421 4.4.2 lmtp.test Error: timeout exceeded")
        #expect(harness.closed)
    }

    @Test func shutdownWhileIdleAnswers421() {
        var harness = SessionHarness()
        harness.feed("LHLO c\r\n")
        harness.session.beginShutdown()
        harness.drain()
        #expect(harness.summary.last == "421 4.3.2 lmtp.test Service shutting down")
        #expect(harness.closed)
    }

    @Test func shutdownLetsTheTransactionFinish() {
        var harness = SessionHarness()
        harness.feed("LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\npart one\r\n")
        harness.session.beginShutdown()
        harness.drain()
        #expect(!harness.closed)
        harness.feed("part two\r\n.\r\n")
        #expect(harness.delivered.count == 1)
        #expect(
            Array(harness.summary.suffix(2)) == [
                "250 2.0.0 <c@d.test> Delivered id=T1", "421 4.3.2 lmtp.test Service shutting down",
            ]
        )
        #expect(harness.closed)
    }

    @Test func newCommandsDuringShutdownGet421() {
        var harness = SessionHarness()
        harness.feed("LHLO c\r\n")
        harness.session.beginShutdown()
        harness.session.receive(Array("MAIL FROM:<a@b.test>\r\n".utf8))
        harness.drain()
        #expect(harness.summary.last == "421 4.3.2 lmtp.test Service shutting down")
    }

    @Test func configurationValidation() {
        #expect(throws: LMTPConfigurationError.self) { try LMTPConfiguration(hostname: "bad host").validate() }
        #expect(throws: LMTPConfigurationError.self) { try LMTPConfiguration(maxRecipients: 0).validate() }
        #expect(throws: LMTPConfigurationError.self) { try LMTPConfiguration(maxCommandLineLength: 100).validate() }
        #expect(throws: Never.self) { try LMTPConfiguration().validate() }
    }

    @Test func xforwardCanBeTurnedOff() {
        var harness = SessionHarness(configuration: LMTPConfiguration(xforward: false))
        harness.feed("LHLO c\r\nXFORWARD NAME=x\r\n")
        #expect(harness.summary.last == "502 5.5.1 Error: command not implemented")
        #expect(!harness.session.lhloReply.lines.contains { $0.hasPrefix("XFORWARD") })
    }

    @Test("a handler's reply text cannot inject lines or forge a code")
    func resultTextIsSanitised() {
        var session = LMTPSession()
        session.receive(Array("LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n".utf8))
        var last = ""
        loop: while true {
            switch session.nextAction() {
            case .send(let reply): last = reply.wireFormat
            case .checkSender: session.resolveSender(.accept)
            case .checkRecipient: session.resolveRecipient(.accept)
            case .deliver:
                session.finishDelivery(
                    LMTPRecipientResults(
                        all: LMTPRecipientResult(code: 250, enhancedCode: "5.1.1", text: "ok\r\n250 fake\nline")
                    )
                )
            case .spill: Issue.record("no spill without a threshold")
            case .needInput, .close: break loop
            }
        }
        #expect(last == "250 2.0.0 <c@d.test> ok  250 fake line\r\n")
    }

    @Test(
        "results go to recipients by recipient: given out of RCPT order they still reach the right one; a duplicate RCPT gets its recipient's result; one without a result gets 451"
    )
    func resultsAreMatchedByRecipient() {
        var session = LMTPSession()
        session.receive(
            Array(
                "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@d.test>\r\nRCPT TO:<g@d.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n"
                    .utf8
            )
        )
        var replies: [String] = []
        loop: while true {
            switch session.nextAction() {
            case .send(let reply): replies.append(reply.wireFormat)
            case .checkSender: session.resolveSender(.accept)
            case .checkRecipient: session.resolveRecipient(.accept)
            case .deliver(let message):
                // Set in reverse RCPT order, and none for g@d.test.
                var results = LMTPRecipientResults()
                results[message.recipients[1]] = .permanentFailure("No such user")
                results[message.recipients[0]] = .delivered()
                session.finishDelivery(results)
            case .spill: Issue.record("no spill without a threshold")
            case .needInput, .close: break loop
            }
        }
        #expect(
            Array(replies.suffix(4)) == [
                "250 2.0.0 <c@d.test> Delivered\r\n", "550 5.0.0 <e@d.test> No such user\r\n",
                "451 4.3.0 <g@d.test> Internal error: no result for this recipient\r\n",
                "250 2.0.0 <c@d.test> Delivered\r\n",
            ]
        )
    }
}
