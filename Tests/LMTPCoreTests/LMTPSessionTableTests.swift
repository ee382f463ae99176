import LMTPCore
import Testing

/// One protocol case: bytes the client sends → replies the server must give, in order.
struct ProtocolCase: CustomTestStringConvertible, Sendable {
    let name: String
    let input: String
    /// Prefixes of the summarised replies (`code enhanced text`), one per reply, in order.
    let expected: [String]
    /// How many messages the handler must have received.
    var deliveries: Int? = nil
    /// Whether the server must have closed the connection.
    var closes = false

    var testDescription: String { name }
}

private let lhlo = "LHLO client.test\r\n"
private let lhloOK = "250 XFORWARD"
private let mailOK = "250 2.1.0"
private let rcptOK = "250 2.1.5"
private let go = "354 End data"

/// A full transaction: sender, recipients, message text (already dot-stuffed, without the final dot).
private func transaction(
    _ from: String = "<a@sender.test>",
    rcpts: [String] = ["<b@example.test>"],
    body: String = "Subject: t\r\n\r\nhi\r\n"
) -> String {
    "MAIL FROM:\(from)\r\n" + rcpts.map { "RCPT TO:\($0)\r\n" }.joined() + "DATA\r\n" + body + ".\r\n"
}

let protocolCases: [ProtocolCase] = [
    // The basic path and its variants.
    .init(
        name: "basic transaction",
        input: lhlo + transaction() + "QUIT\r\n",
        expected: [lhloOK, mailOK, rcptOK, go, "250 2.0.0 <b@example.test> Delivered", "221 2.0.0"],
        deliveries: 1,
        closes: true
    ),
    .init(
        name: "lowercase verbs and keywords (smtplib)",
        input: "lhlo x\r\nmail from:<a@b.test> size=10\r\nrcpt to:<c@d.test>\r\ndata\r\nx\r\n.\r\nquit\r\n",
        expected: [lhloOK, mailOK, rcptOK, go, "250 2.0.0 <c@d.test>", "221"],
        deliveries: 1,
        closes: true
    ),
    .init(
        name: "two transactions on one connection",
        input: lhlo + transaction() + transaction("<c@s.test>", rcpts: ["<d@e.test>"]),
        expected: [
            lhloOK, mailOK, rcptOK, go, "250 2.0.0 <b@example.test>", mailOK, rcptOK, go, "250 2.0.0 <d@e.test>",
        ],
        deliveries: 2
    ),
    .init(name: "LHLO reply lists the extensions", input: lhlo, expected: [lhloOK]),
    .init(name: "LHLO without argument", input: "LHLO\r\n", expected: ["501 5.5.4 Syntax: LHLO"]),
    .init(name: "HELO is refused with 500", input: "HELO x\r\n", expected: ["500 5.5.1"]),
    .init(name: "EHLO is refused with 500", input: "EHLO x\r\n", expected: ["500 5.5.1"]),
    .init(
        name: "LHLO twice resets the transaction",
        input: lhlo + "MAIL FROM:<a@b.test>\r\n" + lhlo + "RCPT TO:<c@d.test>\r\n",
        expected: [lhloOK, mailOK, lhloOK, "503 5.5.1 Error: need MAIL"]
    ),
    // Sequence errors.
    .init(name: "MAIL before LHLO", input: "MAIL FROM:<a@b.test>\r\n", expected: ["503 5.5.1 Error: send LHLO first"]),
    .init(name: "RCPT before LHLO", input: "RCPT TO:<a@b.test>\r\n", expected: ["503 5.5.1"]),
    .init(name: "DATA before LHLO", input: "DATA\r\n", expected: ["503 5.5.1"]),
    .init(
        name: "RCPT before MAIL",
        input: lhlo + "RCPT TO:<a@b.test>\r\n",
        expected: [lhloOK, "503 5.5.1 Error: need MAIL command"]
    ),
    .init(
        name: "DATA before MAIL",
        input: lhlo + "DATA\r\n",
        expected: [lhloOK, "503 5.5.1 Error: need MAIL command"]
    ),
    .init(
        name: "DATA with no accepted recipient is 503 (RFC 2033 4.2)",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<reject@d.test>\r\nDATA\r\n",
        expected: [lhloOK, mailOK, "550 5.1.1", "503 5.5.1 Error: no valid recipients"]
    ),
    .init(
        name: "nested MAIL keeps the first transaction",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nMAIL FROM:<x@y.test>\r\nDATA\r\nx\r\n.\r\n",
        expected: [lhloOK, mailOK, rcptOK, "503 5.5.1 Error: nested MAIL", go, "250 2.0.0 <c@d.test>"],
        deliveries: 1
    ),
    .init(
        name: "rejected MAIL leaves no transaction",
        input: lhlo + "MAIL FROM:<blocked@b.test>\r\nRCPT TO:<c@d.test>\r\n",
        expected: [lhloOK, "550 5.7.1", "503 5.5.1"]
    ),
    // MAIL FROM grammar.
    .init(
        name: "null sender",
        input: lhlo + transaction("<>"),
        expected: [lhloOK, mailOK, rcptOK, go, "250 2.0.0"],
        deliveries: 1
    ),
    .init(name: "space after FROM:", input: lhlo + "MAIL FROM: <a@b.test>\r\n", expected: [lhloOK, mailOK]),
    .init(name: "no angle brackets", input: lhlo + "MAIL FROM:a@b.test\r\n", expected: [lhloOK, mailOK]),
    .init(name: "trailing space after path", input: lhlo + "MAIL FROM:<a@b.test>  \r\n", expected: [lhloOK, mailOK]),
    .init(
        name: "MAIL without FROM:",
        input: lhlo + "MAIL <a@b.test>\r\n",
        expected: [lhloOK, "501 5.5.4 Syntax: MAIL FROM:<address>"]
    ),
    .init(name: "MAIL with empty path text", input: lhlo + "MAIL FROM:\r\n", expected: [lhloOK, "501 5.5.4"]),
    .init(name: "missing closing bracket", input: lhlo + "MAIL FROM:<a@b.test\r\n", expected: [lhloOK, "501 5.5.4"]),
    .init(
        name: "junk right after the path",
        input: lhlo + "MAIL FROM:<a@b.test>x\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(
        name: "sender without domain",
        input: lhlo + "MAIL FROM:<nodomain>\r\n",
        expected: [lhloOK, "501 5.1.7 Bad sender address syntax"]
    ),
    .init(
        name: "sender with empty local part",
        input: lhlo + "MAIL FROM:<@b.test>\r\n",
        expected: [lhloOK, "501 5.1.7"]
    ),
    .init(name: "SIZE accepted", input: lhlo + "MAIL FROM:<a@b.test> SIZE=1000\r\n", expected: [lhloOK, mailOK]),
    .init(
        name: "SIZE not numeric",
        input: lhlo + "MAIL FROM:<a@b.test> SIZE=abc\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(name: "SIZE without value", input: lhlo + "MAIL FROM:<a@b.test> SIZE\r\n", expected: [lhloOK, "501 5.5.4"]),
    .init(
        name: "SIZE with spaces around =",
        input: lhlo + "MAIL FROM:<a@b.test> SIZE = 1\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(
        name: "SIZE above the limit",
        input: lhlo + "MAIL FROM:<a@b.test> SIZE=999999999999\r\n",
        expected: [lhloOK, "552 5.3.4"]
    ),
    .init(
        name: "SIZE 21 digits",
        input: lhlo + "MAIL FROM:<a@b.test> SIZE=123456789012345678901\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(name: "BODY=8BITMIME", input: lhlo + "MAIL FROM:<a@b.test> BODY=8BITMIME\r\n", expected: [lhloOK, mailOK]),
    .init(name: "BODY=7bit lowercase", input: lhlo + "MAIL FROM:<a@b.test> body=7bit\r\n", expected: [lhloOK, mailOK]),
    .init(
        name: "BODY=BINARYMIME without CHUNKING",
        input: lhlo + "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(
        name: "SMTPUTF8",
        input: lhlo + "MAIL FROM:<a@b.test> SMTPUTF8 BODY=8BITMIME\r\n",
        expected: [lhloOK, mailOK]
    ),
    .init(
        name: "SMTPUTF8 with a value",
        input: lhlo + "MAIL FROM:<a@b.test> SMTPUTF8=YES\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(
        name: "unknown MAIL parameter",
        input: lhlo + "MAIL FROM:<a@b.test> FOO=1\r\n",
        expected: [lhloOK, "555 5.5.4 Unsupported option: FOO"]
    ),
    .init(
        name: "3,000-byte parameter name is quoted cut to 64 bytes (fuzz finding)",
        input: lhlo + "MAIL FROM:<a@b.test> X\(String(repeating: "Y", count: 3000))=1\r\n",
        expected: [lhloOK, "555 5.5.4 Unsupported option: X\(String(repeating: "Y", count: 60))..."]
    ),
    .init(
        name: "long RCPT parameter name is quoted cut",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test> Z\(String(repeating: "9", count: 2000))\r\n",
        expected: [lhloOK, mailOK, "555 5.5.4 Unsupported option: Z\(String(repeating: "9", count: 60))..."]
    ),
    .init(
        name: "DSN parameter not offered",
        input: lhlo + "MAIL FROM:<a@b.test> RET=HDRS\r\n",
        expected: [lhloOK, "555 5.5.4"]
    ),
    .init(
        name: "duplicate parameter",
        input: lhlo + "MAIL FROM:<a@b.test> SIZE=1 SIZE=2\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(
        name: "garbage parameter",
        input: lhlo + "MAIL FROM:<a@b.test> #$%=!@#\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(
        name: "UTF-8 sender (SMTPUTF8)",
        input: lhlo + "MAIL FROM:<jos\u{E9}@b.test> SMTPUTF8\r\n",
        expected: [lhloOK, mailOK]
    ),
    // RCPT TO grammar.
    .init(
        name: "quoted local part with space",
        input: lhlo + transaction(rcpts: ["<\"john doe\"@d.test>"]),
        expected: [lhloOK, mailOK, rcptOK, go, "250 2.0.0 <\"john doe\"@d.test>"],
        deliveries: 1
    ),
    .init(
        name: "quoted local part with escaped quote and >",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<\"a\\\"b>\"@d.test>\r\n",
        expected: [lhloOK, mailOK, rcptOK]
    ),
    .init(
        name: "empty quoted local part",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<\"\"@d.test>\r\n",
        expected: [lhloOK, mailOK, rcptOK]
    ),
    .init(
        name: "source route is stripped",
        input: lhlo + transaction(rcpts: ["<@r1.test,@r2.test:user@d.test>"]),
        expected: [lhloOK, mailOK, rcptOK, go, "250 2.0.0 <user@d.test>"],
        deliveries: 1
    ),
    .init(
        name: "malformed source route",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<@r1.test,r2:user@d.test>\r\n",
        expected: [lhloOK, mailOK, "501 5.1.3"]
    ),
    .init(
        name: "<Postmaster> without domain",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<Postmaster>\r\n",
        expected: [lhloOK, mailOK, rcptOK]
    ),
    .init(
        name: "<postmaster> lowercase",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<postmaster>\r\n",
        expected: [lhloOK, mailOK, rcptOK]
    ),
    .init(
        name: "domainless non-postmaster",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<bob>\r\n",
        expected: [lhloOK, mailOK, "501 5.1.3"]
    ),
    .init(
        name: "empty recipient <>",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<>\r\n",
        expected: [lhloOK, mailOK, "501 5.1.3 Bad recipient address syntax"]
    ),
    .init(
        name: "recipient <@d>",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<@d.test>\r\n",
        expected: [lhloOK, mailOK, "501 5.1.3"]
    ),
    .init(
        name: "recipient <x@>",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@>\r\n",
        expected: [lhloOK, mailOK, "501 5.1.3"]
    ),
    .init(
        name: "recipient with empty domain label",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@a..b>\r\n",
        expected: [lhloOK, mailOK, "501 5.1.3"]
    ),
    .init(
        name: "address literal domain",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@[192.0.2.1]>\r\n",
        expected: [lhloOK, mailOK, rcptOK]
    ),
    .init(
        name: "UTF-8 recipient",
        input: lhlo + "MAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<m\u{FC}ller@b\u{FC}cher.test>\r\n",
        expected: [lhloOK, mailOK, rcptOK]
    ),
    .init(
        name: "RCPT without TO:",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT <c@d.test>\r\n",
        expected: [lhloOK, mailOK, "501 5.5.4 Syntax: RCPT TO:<address>"]
    ),
    .init(
        name: "ORCPT accepted",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test> ORCPT=rfc822;c@d.test\r\n",
        expected: [lhloOK, mailOK, rcptOK]
    ),
    .init(
        name: "ORCPT utf-8 form",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test> ORCPT=utf-8;m\\x{FC}ller@d.test\r\n",
        expected: [lhloOK, mailOK, rcptOK]
    ),
    .init(
        name: "ORCPT malformed",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test> ORCPT=nosemicolon\r\n",
        expected: [lhloOK, mailOK, "501 5.5.4"]
    ),
    .init(
        name: "NOTIFY without DSN",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test> NOTIFY=NEVER\r\n",
        expected: [lhloOK, mailOK, "555 5.5.4"]
    ),
    .init(
        name: "policy rejects one of two recipients",
        input: lhlo + transaction(rcpts: ["<reject1@d.test>", "<ok@d.test>"]),
        expected: [lhloOK, mailOK, "550 5.1.1", rcptOK, go, "250 2.0.0 <ok@d.test>"],
        deliveries: 1
    ),
    .init(
        name: "policy defers a recipient with 450",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<temp@d.test>\r\n",
        expected: [lhloOK, mailOK, "450 4.2.1"]
    ),
    // Per-recipient replies after the dot.
    .init(
        name: "duplicate recipients get one reply each",
        input: lhlo + transaction(rcpts: ["<b@d.test>", "<b@d.test>"]),
        expected: [lhloOK, mailOK, rcptOK, rcptOK, go, "250 2.0.0 <b@d.test>", "250 2.0.0 <b@d.test>"],
        deliveries: 1
    ),
    .init(
        name: "mixed results in RCPT order",
        input: lhlo + transaction(rcpts: ["<ok1@d.test>", "<fail@d.test>", "<bounce@d.test>", "<ok2@d.test>"]),
        expected: [
            lhloOK, mailOK, rcptOK, rcptOK, rcptOK, rcptOK, go, "250 2.0.0 <ok1@d.test>", "451 4.3.0 <fail@d.test>",
            "550 5.0.0 <bounce@d.test>", "250 2.0.0 <ok2@d.test>",
        ],
        deliveries: 1
    ),
    .init(
        name: "3,000-byte local part: the per-recipient reply quotes 256 bytes of it",
        input: lhlo + transaction(rcpts: ["<\(String(repeating: "l", count: 3000))@d.test>"]),
        expected: [lhloOK, mailOK, rcptOK, go, "250 2.0.0 <\(String(repeating: "l", count: 253))...> Delivered"],
        deliveries: 1
    ),
    // Other commands.
    .init(
        name: "RSET ends the transaction",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRSET\r\nDATA\r\n",
        expected: [lhloOK, mailOK, rcptOK, "250 2.0.0", "503 5.5.1"]
    ),
    .init(name: "RSET with argument", input: "RSET x\r\n", expected: ["501 5.5.4 Syntax: RSET"]),
    .init(name: "RSET before LHLO", input: "RSET\r\n", expected: ["250 2.0.0"]),
    .init(
        name: "NOOP with and without argument",
        input: "NOOP\r\nNOOP hello\r\n",
        expected: ["250 2.0.0", "250 2.0.0"]
    ),
    .init(name: "QUIT with argument", input: "QUIT now\r\n", expected: ["501 5.5.4"]),
    .init(
        name: "QUIT closes and later bytes are ignored",
        input: "QUIT\r\nNOOP\r\n",
        expected: ["221 2.0.0"],
        closes: true
    ),
    .init(name: "VRFY is 252", input: "VRFY bob\r\n", expected: ["252 2.5.0"]),
    .init(name: "VRFY without argument", input: "VRFY\r\n", expected: ["501 5.5.4"]),
    .init(name: "HELP", input: "HELP\r\n", expected: ["214 2.0.0"]),
    .init(name: "unknown verb", input: "FOO bar\r\n", expected: ["500 5.5.2 Error: command not recognized"]),
    .init(name: "verb glued to argument", input: "MAILFROM:<a@b.test>\r\n", expected: ["500 5.5.2"]),
    .init(name: "EXPN not implemented", input: "EXPN list\r\n", expected: ["502 5.5.1"]),
    .init(name: "BDAT not offered", input: lhlo + "BDAT 10 LAST\r\n", expected: [lhloOK, "502 5.5.1"]),
    .init(name: "STARTTLS not offered", input: "STARTTLS\r\n", expected: ["502 5.5.1"]),
    // Bad bytes in commands.
    .init(name: "empty line", input: "\r\n", expected: ["500 5.5.2 Error: bad syntax"]),
    .init(name: "spaces only", input: "   \r\n", expected: ["500 5.5.2"]),
    .init(name: "NUL in a command", input: "NOOP\u{0}x\r\nNOOP\r\n", expected: ["500 5.5.2", "250 2.0.0"]),
    .init(name: "bare CR inside a command", input: "NO\rOP\r\n", expected: ["500 5.5.2"]),
    .init(name: "escape byte in a command", input: "NOOP \u{1B}[31m\r\n", expected: ["500 5.5.2"]),
    .init(name: "bare LF ends a command", input: "NOOP\nNOOP\r\n", expected: ["250 2.0.0", "250 2.0.0"]),
    .init(name: "trailing white space", input: "NOOP \t \r\n", expected: ["250 2.0.0"]),
    // XFORWARD.
    .init(name: "XFORWARD before LHLO", input: "XFORWARD NAME=x\r\n", expected: ["503 5.5.1"]),
    .init(
        name: "XFORWARD as Postfix sends it",
        input: lhlo
            + "XFORWARD NAME=localhost ADDR=127.0.0.1 PORT=33430\r\nXFORWARD PROTO=ESMTP HELO=c.test IDENT=693B2F8E93B SOURCE=LOCAL\r\n",
        expected: [lhloOK, "250 2.0.0", "250 2.0.0"]
    ),
    .init(
        name: "XFORWARD unknown attribute",
        input: lhlo + "XFORWARD COLOR=blue\r\n",
        expected: [lhloOK, "501 5.5.4"]
    ),
    .init(name: "XFORWARD without attributes", input: lhlo + "XFORWARD\r\n", expected: [lhloOK, "501 5.5.4"]),
    .init(name: "XFORWARD bad xtext", input: lhlo + "XFORWARD NAME=a+ZZ\r\n", expected: [lhloOK, "501 5.5.4"]),
    .init(
        name: "XFORWARD long unknown attribute name is quoted cut",
        input: lhlo + "XFORWARD \(String(repeating: "N", count: 1000))=x\r\n",
        expected: [lhloOK, "501 5.5.4 Bad XFORWARD attribute name: \(String(repeating: "N", count: 61))..."]
    ),
    .init(
        name: "XFORWARD inside a transaction",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nXFORWARD NAME=x\r\n",
        expected: [lhloOK, mailOK, "503 5.5.1"]
    ),
    // DATA.
    .init(
        name: "DATA with an argument",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA now\r\n",
        expected: [lhloOK, mailOK, rcptOK, "501 5.5.4"]
    ),
    .init(
        name: "pipelined QUIT after the dot",
        input: lhlo + transaction() + "QUIT\r\n",
        expected: [lhloOK, mailOK, rcptOK, go, "250 2.0.0", "221 2.0.0"],
        deliveries: 1,
        closes: true
    ),
    .init(
        name: "text pipelined after a refused DATA is read as commands",
        input: lhlo + "MAIL FROM:<a@b.test>\r\nRCPT TO:<reject@d.test>\r\nDATA\r\nFROP!\r\n.\r\nQUIT\r\n",
        expected: [lhloOK, mailOK, "550 5.1.1", "503 5.5.1", "500 5.5.2", "500 5.5.2", "221 2.0.0"],
        closes: true
    ),
]

@Suite("LMTP session: protocol table")
struct LMTPSessionTableTests {
    @Test(arguments: protocolCases)
    func wholeInputAtOnce(_ testCase: ProtocolCase) {
        var harness = SessionHarness()
        harness.feed(testCase.input)
        check(harness, testCase)
    }

    /// The same case fed one byte at a time must give the same replies (framing never depends on reads).
    @Test(arguments: protocolCases)
    func oneByteAtATime(_ testCase: ProtocolCase) {
        var harness = SessionHarness()
        for byte in Array(testCase.input.utf8) { harness.feed([byte]) }
        check(harness, testCase)
    }

    private func check(_ harness: SessionHarness, _ testCase: ProtocolCase) {
        let summary = harness.summary
        #expect(summary.count == testCase.expected.count, "replies: \(summary)")
        for (actual, expected) in zip(summary, testCase.expected) {
            #expect(actual.hasPrefix(expected), "expected \(expected), got \(actual); all: \(summary)")
        }
        if let deliveries = testCase.deliveries {
            #expect(harness.delivered.count == deliveries)
        }
        #expect(harness.closed == testCase.closes)
        // RFC 5321 §4.5.3.1.5: no reply line is longer than 512 bytes, CRLF included.
        for reply in harness.replies {
            for line in reply.wireFormat.utf8.split(separator: UInt8(ascii: "\n")) {
                #expect(line.count + 1 <= LMTPReply.maxLineLength, "\(line.count + 1)-byte reply line: \(reply)")
            }
        }
    }
}
