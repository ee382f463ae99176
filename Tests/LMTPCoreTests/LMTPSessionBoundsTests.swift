import LMTPCore
import Testing

/// Header limits, spilling message bytes to the driver, the DATA deadline: pure session logic.
@Suite("Session resource bounds")
struct LMTPSessionBoundsTests {
    static let transaction = "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@d.test>\r\nDATA\r\n"

    static func headers(fields: Int, valueLength: Int = 1) -> String {
        (0..<fields).map { "X-F\($0): \(String(repeating: "v", count: valueLength))\r\n" }.joined()
    }

    @Test(arguments: [
        // (fields, value length, accepted) against 20 fields / 2048 bytes
        (20, 1, true), (21, 1, false), (1, 2000, true), (1, 2100, false), (2, 1100, false),
    ])
    func headerLimits(fields: Int, valueLength: Int, accepted: Bool) {
        var harness = SessionHarness(
            configuration: LMTPConfiguration(hostname: "lmtp.test", maxHeaderBytes: 2048, maxHeaderFields: 20)
        )
        harness.feed(
            Self.transaction + Self.headers(fields: fields, valueLength: valueLength) + "\r\nbody\r\n.\r\nNOOP\r\n"
        )
        if accepted {
            #expect(harness.delivered.count == 1)
        } else {
            #expect(harness.delivered.isEmpty)
            #expect(
                Array(harness.summary.suffix(3)) == [
                    "552 5.3.4 <c@d.test> Message header exceeds fixed limit (2048 bytes, 20 fields)",
                    "552 5.3.4 <e@d.test> Message header exceeds fixed limit (2048 bytes, 20 fields)",
                    "250 2.0.0 Ok",
                ]
            )
        }
    }

    @Test func continuationLinesAndBodyDoNotCountAsFields() {
        var harness = SessionHarness(configuration: LMTPConfiguration(hostname: "lmtp.test", maxHeaderFields: 16))
        let folded = "Subject: a\r\n" + String(repeating: " folded\r\n", count: 40)
        let body = String(repeating: "Not-A-Header: body line\r\n", count: 100)
        harness.feed(Self.transaction + folded + "\r\n" + body + ".\r\n")
        #expect(harness.delivered.count == 1)
    }

    @Test func headerFieldsAreCountedAcrossArbitraryChunks() {
        var harness = SessionHarness(configuration: LMTPConfiguration(hostname: "lmtp.test", maxHeaderFields: 16))
        let text = Self.transaction + Self.headers(fields: 17) + "\r\nb\r\n.\r\n"
        for byte in text.utf8 { harness.feed([byte]) }
        #expect(harness.delivered.isEmpty)
        #expect(harness.summary.last?.hasPrefix("552 5.3.4 <e@d.test> Message header exceeds") == true)
    }

    @Test(arguments: [1, 7, 4096, 100_000])
    func spilledBytesAndTailMakeTheMessage(chunk: Int) {
        var harness = SessionHarness(configuration: LMTPConfiguration(hostname: "lmtp.test", spillThreshold: 4096))
        let lines = (0..<2000).map { $0 % 10 == 0 ? ".dot \($0)\r\n" : "line \($0)\r\n" }
        let body = lines.joined()
        let stuffed = lines.map { $0.hasPrefix(".") ? "." + $0 : $0 }.joined()
        let wire = Self.transaction + "Subject: big\r\n\r\n" + stuffed + ".\r\n"
        let bytes = Array(wire.utf8)
        var index = 0
        while index < bytes.count {
            harness.feed(Array(bytes[index..<min(bytes.count, index + chunk)]))
            index += chunk
        }
        #expect(harness.delivered.count == 1)
        #expect(harness.spills >= (chunk >= 4096 ? 1 : 4))
        #expect(harness.messages.first == Array(("Subject: big\r\n\r\n" + body).utf8))
        #expect(harness.delivered[0].spilledBytes + harness.delivered[0].data.count == harness.messages[0].count)
        #expect(harness.delivered[0].data.count < 4096 + chunk)
    }

    @Test func spillsOfARefusedMessageAreDropped() {
        var harness = SessionHarness(
            configuration: LMTPConfiguration(hostname: "lmtp.test", maxMessageSize: 10_000, spillThreshold: 4096)
        )
        harness.feed(Self.transaction + String(repeating: "x", count: 6000) + "\r\n")
        #expect(harness.spills == 1)
        harness.feed(String(repeating: "y", count: 6000) + "\r\n.\r\n")
        #expect(harness.delivered.isEmpty)
        #expect(harness.spilled.isEmpty)
        #expect(harness.summary.last == "552 5.3.4 <e@d.test> Message size exceeds fixed limit")
    }

    @Test func dataTimeoutClosesWith421AndDiscardsTheMessage() {
        var harness = SessionHarness()
        harness.feed(Self.transaction + "Subject: slow\r\n\r\npartial")
        #expect(harness.session.isReceivingData)
        harness.session.dataTimeout()
        harness.drain()
        #expect(harness.closed)
        #expect(harness.delivered.isEmpty)
        #expect(harness.summary.last == "421 4.4.2 lmtp.test Error: timeout exceeded (data rate too low)")
        #expect(harness.session.lostInDataBytes == 24)
    }

    @Test func invalidBoundsAreRefused() {
        #expect(throws: LMTPConfigurationError.self) { try LMTPConfiguration(maxHeaderBytes: 100).validate() }
        #expect(throws: LMTPConfigurationError.self) { try LMTPConfiguration(maxHeaderFields: 3).validate() }
        #expect(throws: LMTPConfigurationError.self) { try LMTPConfiguration(spillThreshold: 100).validate() }
    }
}

@Suite("Request deadlines")
struct LMTPDeadlineTests {
    @Test func commandDeadlineIsNotExtendedByBytes() {
        var deadline = LMTPDeadline(timeout: .seconds(10))
        deadline.record(elapsed: .seconds(6), bytes: 0)
        #expect(!deadline.isExpired)
        deadline.record(elapsed: .seconds(5), bytes: 0)
        #expect(deadline.isExpired)
        deadline.reset()
        #expect(deadline.remaining == .seconds(10))
    }

    @Test func inactivityOnlyWithoutARate() {
        var deadline = LMTPDeadline(timeout: .seconds(10), minimumRate: 0)
        for _ in 0..<100 { deadline.record(elapsed: .seconds(9), bytes: 1) }
        #expect(!deadline.isExpired)
        deadline.record(elapsed: .seconds(11), bytes: 0)
        #expect(deadline.isExpired)
    }

    @Test(arguments: [
        // (bytes per second sent, expires within 60 s at 500 B/s minimum and a 10 s timeout)
        (50, true), (400, true), (500, false), (5000, false),
    ])
    func minimumDataRate(rate: Int, expires: Bool) {
        var deadline = LMTPDeadline(timeout: .seconds(10), minimumRate: 500)
        var expired = false
        for _ in 0..<600 {  // 60 s in 100 ms reads
            deadline.record(elapsed: .milliseconds(100), bytes: rate / 10)
            if deadline.isExpired {
                expired = true
                break
            }
        }
        #expect(expired == expires)
    }

    @Test func creditNeverExceedsTheTimeout() {
        var deadline = LMTPDeadline(timeout: .seconds(10), minimumRate: 1)
        deadline.record(elapsed: .zero, bytes: 1_000_000)
        #expect(deadline.remaining == .seconds(10))
    }
}
