import Foundation
import MailCore
import MessageData
import Testing

@Suite("Address lists")
struct AddressListTests {
    @Test(arguments: [
        ("a@example.org", [MailAddress(name: nil, address: "a@example.org")]),
        ("Alice <A@Example.ORG>", [MailAddress(name: "Alice", address: "A@example.org")]),
        (
            "\"Doe, John\" <j@x.test>, k@y.test",
            [MailAddress(name: "Doe, John", address: "j@x.test"), MailAddress(name: nil, address: "k@y.test")]
        ),
        (
            "=?utf-8?q?Zetterstr=C3=B6m=2C_Erik?= <e@x.test>",
            [MailAddress(name: "Zetterström, Erik", address: "e@x.test")]
        ),
        (
            "=?utf-8?q?J=C3=BCrgen?= =?utf-8?q?_M=C3=BCller?= <j@x.test>",
            [MailAddress(name: "Jürgen Müller", address: "j@x.test")]
        ),
        ("John Q. Public <jqp@x.test>", [MailAddress(name: "John Q. Public", address: "jqp@x.test")]),
        ("jqp@x.test (John Q. Public)", [MailAddress(name: "John Q. Public", address: "jqp@x.test")]),
        (
            "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
            [
                MailAddress(name: "Ed Jones", address: "c@a.test"), MailAddress(name: nil, address: "joe@where.test"),
                MailAddress(name: "John", address: "jdoe@one.test"),
            ]
        ),
        ("undisclosed-recipients:;", []),
        ("<@route.test,@r2.test:user@d.test>", [MailAddress(name: nil, address: "user@d.test")]),
        (
            "a@b.test,,c@d.test,",
            [MailAddress(name: nil, address: "a@b.test"), MailAddress(name: nil, address: "c@d.test")]
        ),
        ("\"a@b.test\" <c@d.test>", [MailAddress(name: "a@b.test", address: "c@d.test")]),
        (
            "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
            [MailAddress(name: "Pete", address: "pete@silly.test")]
        ),
        ("mailto:ops@x.test", [MailAddress(name: nil, address: "ops@x.test")]),
        ("\"unterminated <u@x.test>", [MailAddress(name: "\"unterminated", address: "u@x.test")]),
        ("", []),
    ])
    func parse(_ text: String, _ expected: [MailAddress]) {
        var problems: [String] = []
        #expect(AddressList.parse(text, problems: &problems) == expected)
    }
}

@Suite("Dates")
struct MailDateTests {
    @Test(arguments: [
        ("Sat, 28 Nov 2026 10:00:00 +0000", "2026-11-28T10:00:00Z"),
        ("28 Nov 2026 10:00:00 +0100", "2026-11-28T09:00:00Z"),
        ("Sat, 28 Nov 2026 10:00 -0530", "2026-11-28T15:30:00Z"),
        ("Fri, 21 Nov 97 09:55:06 GMT", "1997-11-21T09:55:06Z"),
        ("Thu, 13 Feb 1969 23:32:54 -0330 (Newfoundland Time)", "1969-02-14T03:02:54Z"),
        ("1 Jan 05 00:00:00 EST", "2005-01-01T05:00:00Z"),
        ("Mon Nov 28 10:00:00 2022", "2022-11-28T10:00:00Z"),
        ("Tue,  1 Jul 2003 10:52:37 +0200", "2003-07-01T08:52:37Z"),
        ("31 Dec 2026 23:59:60 +0000", "2026-12-31T23:59:59Z"),
        ("Sun, 29 Feb 2032 12:00:00 Z", "2032-02-29T12:00:00Z"),
    ])
    func parses(_ text: String, _ expected: String) {
        #expect(MailDate.rfc3339(text) == expected)
    }

    @Test(arguments: [
        "", "%DATE%", "yesterday", "32 Nov 2026 10:00:00 +0000", "28 Nov 2026 25:00:00 +0000", "28 Foo 2026 10:00:00",
    ])
    func rejects(_ text: String) {
        #expect(MailDate.rfc3339(text) == nil)
    }
}

@Suite("Transfer encodings, charsets, parameters, HTML")
struct DecodingTests {
    @Test func base64Tolerance() {
        var malformed = false
        #expect(TransferDecoding.base64(Array("SGVsbG8=".utf8)[...], malformed: &malformed) == Array("Hello".utf8))
        #expect(TransferDecoding.base64(Array("SGVs\r\nbG8".utf8)[...], malformed: &malformed) == Array("Hello".utf8))
        #expect(!malformed)
        #expect(
            TransferDecoding.base64(Array("SGVsbG8=SGk=".utf8)[...], malformed: &malformed) == Array("HelloHi".utf8)
        )
        #expect(TransferDecoding.base64(Array("S*G!V#s$b%G^8".utf8)[...], malformed: &malformed) == Array("Hello".utf8))
        #expect(malformed)
    }

    @Test func quotedPrintable() {
        #expect(
            TransferDecoding.quotedPrintable(Array("a=3Db=\r\nc  \r\nd=20\r\n=e9=E9=XY".utf8)[...]) == Array(
                "a=bc\r\nd \r\n".utf8
            ) + [0xE9, 0xE9] + Array("=XY".utf8)
        )
    }

    @Test(arguments: [
        ("utf-8", [0xE2, 0x82, 0xAC] as [UInt8], "€"), ("iso-8859-1", [0xE9], "é"), ("latin1", [0x80], "€"),
        ("windows-1251", [0xC6], "Ж"),
        ("koi8-r", [0xF0], "П"), ("iso-8859-2", [0xB1], "ą"), ("gb2312", [0xC4, 0xE3], "你"),
        ("big5", [0xA4, 0xA4], "中"),
        ("shift_jis", [0x82, 0xA0], "あ"), ("euc-kr", [0xC7, 0xD1], "한"), ("euc-jp", [0xA4, 0xA2], "あ"),
        ("us-ascii", [0xC3, 0xA9], "é"),
        ("utf-7", Array("+AOk-".utf8), "é"), ("\"UTF-8\"", [0x61], "a"),
    ])
    func charsets(_ label: String, _ bytes: [UInt8], _ expected: String) {
        let decoded = Charset.decode(bytes, label: label)
        #expect(decoded.text == expected)
        #expect(decoded.replacements == 0)
        #expect(!decoded.unknownCharset)
    }

    @Test func invalidBytesAreReplacedAndCounted() {
        let decoded = Charset.decode([0x61, 0xFF, 0x62, 0xC3], label: "utf-8")
        #expect(decoded.text == "a\u{FFFD}b\u{FFFD}")
        #expect(decoded.replacements == 2)
        #expect(Charset.decode([0x61], label: "no-such-charset").unknownCharset)
    }

    @Test func contentTypeParameters() {
        var problems: [String] = []
        let value = MIMEHeaderValue(
            parsing: "Text/Plain; charset=\"UTF-8\"; name*0*=utf-8'de'%C3%9C; name*1=ber.txt; format=flowed",
            problems: &problems
        )
        #expect(value.value == "text/plain")
        #expect(value.parameters["charset"] == "UTF-8")
        #expect(value.parameters["name"] == "Über.txt")
        #expect(value.parameters["format"] == "flowed")
        #expect(
            MIMEHeaderValue(parsing: "attachment; filename=\"a \\\"b\\\".pdf\"", problems: &problems).parameters[
                "filename"
            ] == "a \"b\".pdf"
        )
    }

    @Test func htmlToText() {
        #expect(HTMLText.text(fromHTML: "<p>One</p><p>Two &amp; three</p>") == "One\n\nTwo & three")
        #expect(HTMLText.text(fromHTML: "a<br>b<br/>c") == "a\nb\nc")
        #expect(HTMLText.text(fromHTML: "<style>x{}</style><script>var a = '</p>';</script>shown") == "shown")
        #expect(HTMLText.text(fromHTML: "x < y and &#60;tag&#x3E; &unknown; &") == "x < y and <tag> &unknown; &")
        #expect(HTMLText.text(fromHTML: "a << b <b>bold</b> c") == "a << b bold c")
        #expect(HTMLText.text(fromHTML: "<pre>  keep\n  spacing</pre>") == "  keep\n  spacing")
    }

    @Test func messageIDs() {
        #expect(MessageIDList.parse("<a@b> (comment <x@y>)\r\n <c@d>") == ["<a@b>", "<c@d>"])
        #expect(MessageIDList.parse("bare@id.test") == ["<bare@id.test>"])
        #expect(MessageIDList.parse("") == [])
    }
}

@Suite("JSON indenter (lmtphook demo)")
struct JSONIndenterTests {
    @Test func indentsKeepingKeyOrderAndStrings() {
        let compact = #"{"b":1,"a":{"z":[1,{"y":null}],"e":{},"f":[]},"s":"x, {\"q\": [1]}\\","t":true}"#
        let pretty = String(decoding: JSONIndenter.indent(Array(compact.utf8)), as: UTF8.self)
        #expect(
            pretty == """
                {
                  "b": 1,
                  "a": {
                    "z": [
                      1,
                      {
                        "y": null
                      }
                    ],
                    "e": {},
                    "f": []
                  },
                  "s": "x, {\\"q\\": [1]}\\\\",
                  "t": true
                }
                """
        )
    }

    @Test func everyGoldenPayloadKeepsItsMeaning() throws {
        let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
        let files = try FileManager.default.contentsOfDirectory(at: golden, includingPropertiesForKeys: nil).filter {
            $0.pathExtension == "json"
        }
        #expect(files.count >= 30)
        for file in files {
            let compact = try Data(contentsOf: file)
            let pretty = Data(JSONIndenter.indent(Array(compact)))
            let before = try JSONSerialization.jsonObject(with: compact) as? NSDictionary
            let after = try JSONSerialization.jsonObject(with: pretty) as? NSDictionary
            #expect(before != nil && before == after, "\(file.lastPathComponent)")
        }
    }
}
