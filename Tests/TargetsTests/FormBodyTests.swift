import Crypto
import Foundation
import LMTPHookTestSupport
import MessageData
import Targets
import Testing

/// Form bodies parsed back by an independent parser: Python's standard library (`email` for
/// multipart/form-data, `urllib.parse` for url-encoded forms).
@Suite("Form bodies: url-encoded and multipart, parsed back by Python")
struct FormBodyTests {
    static let parser = """
        import sys, json, hashlib, email.parser, email.policy, urllib.parse
        kind, content_type, path = sys.argv[1], sys.argv[2], sys.argv[3]
        data = open(path, 'rb').read()
        if kind == 'urlencoded':
            print(json.dumps(urllib.parse.parse_qsl(data.decode('ascii'), keep_blank_values=True, strict_parsing=True)))
        else:
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b'Content-Type: ' + content_type.encode() + b'\\r\\n\\r\\n' + data)
            assert message.is_multipart() and not message.defects, message.defects
            fields = []
            for part in message.iter_parts():
                assert not part.defects, part.defects
                payload = part.get_payload(decode=True)
                fields.append([part.get_param('name', header='content-disposition'), part.get_filename(),
                               part.get_content_type() if part.get('content-type') else None,
                               hashlib.sha256(payload).hexdigest(), len(payload)])
            print(json.dumps(fields))
        """

    static func parse(_ body: RenderedBody, kind: String) async throws -> Any {
        let directory = TemporaryDirectory("lmtphook-form")
        defer { directory.remove() }
        let script = directory.file("parse.py")
        let path = directory.file("body")
        try Self.parser.write(toFile: script, atomically: true, encoding: .utf8)
        try Data(try body.body.contents()).write(to: URL(fileURLWithPath: path))
        let result = await runProcess("/usr/bin/python3", [script, kind, body.contentType, path])
        #expect(result.status == 0, "\(result.output)")
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    @Test("a url-encoded form round-trips UTF-8, reserved characters and empty values")
    func urlEncoded() async throws {
        var form = FormBody()
        form.add("subject", "Grüße & more = 100% + a/b?c")
        form.add("body-plain", "line 1\r\nline 2 👍")
        form.add("empty", "")
        let rendered = form.urlEncoded()
        #expect(rendered.contentType == "application/x-www-form-urlencoded")
        let pairs = try #require(try await Self.parse(rendered, kind: "urlencoded") as? [[String]])
        #expect(
            pairs == [
                ["subject", "Grüße & more = 100% + a/b?c"], ["body-plain", "line 1\r\nline 2 👍"], ["empty", ""],
            ]
        )
    }

    @Test("multipart: text, 8-bit bytes and a file decoded from a message file, byte-exact, non-ASCII file name")
    func multipart() async throws {
        let directory = TemporaryDirectory("lmtphook-form")
        defer { directory.remove() }
        let content = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let encoded = Array(Data(content).base64EncodedString(options: .lineLength76Characters).utf8)
        let header = Array("Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n".utf8)
        let raw = header + encoded + Array("\r\n".utf8)
        let path = directory.file("message.eml")
        try Data(raw).write(to: URL(fileURLWithPath: path))
        let file = try MessageFile(opening: path)
        let attachment = EncodedContent(
            body: .file(file),
            range: header.count..<(header.count + encoded.count),
            encoding: .base64,
            decodedCount: content.count
        )
        let eightBit: [UInt8] = Array("Subject: caf".utf8) + [0xE9, 0x0D, 0x0A, 0xFF, 0x00, 0x0A]
        var form = FormBody()
        form.add("subject", "Grüße \"quoted\"")
        form.add("body-mime", .bytes(.bytes(eightBit)))
        form.add(
            "attachment-1",
            .file(filename: "€ rate \"Q4\".pdf", contentType: "application/pdf", content: .decoded(attachment))
        )
        let rendered = try form.multipart(boundary: "lmtphook-test-boundary")
        #expect(rendered.contentType == "multipart/form-data; boundary=lmtphook-test-boundary")
        #expect(rendered.body.isStreamed)
        let fields = try #require(try await Self.parse(rendered, kind: "multipart") as? [[Any]])
        #expect(fields.count == 3)
        #expect(fields[0][0] as? String == "subject")
        #expect(fields[0][3] as? String == Self.sha256(Array("Grüße \"quoted\"".utf8)))
        #expect(fields[1][0] as? String == "body-mime" && fields[1][3] as? String == Self.sha256(eightBit))
        #expect(fields[2][0] as? String == "attachment-1")
        #expect(fields[2][1] as? String == "€ rate \"Q4\".pdf", "filename* read back")
        #expect(fields[2][2] as? String == "application/pdf")
        #expect(fields[2][3] as? String == Self.sha256(content) && fields[2][4] as? Int == content.count)
    }

    @Test("a boundary that occurs in the content (also inside a streamed file) is not used")
    func boundaryNeverInContent() async throws {
        let boundary = "lmtphook-b"
        for placement in ["text", "file"] {
            var form = FormBody()
            let hostile = Array(
                "x\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"forged\"\r\n\r\nevil".utf8
            )
            if placement == "text" {
                form.add("body-plain", String(decoding: hostile, as: UTF8.self))
            } else {
                let padded = [UInt8](repeating: 0x41, count: 300_000) + hostile
                let content = EncodedContent(
                    body: .bytes(padded),
                    range: 0..<padded.count,
                    encoding: .identity,
                    decodedCount: padded.count
                )
                form.add(
                    "attachment-1",
                    .file(filename: "a.txt", contentType: "text/plain", content: .decoded(content))
                )
            }
            let rendered = try form.multipart(boundary: boundary)
            #expect(rendered.contentType == "multipart/form-data; boundary=\(boundary)-1")
            let fields = try #require(try await Self.parse(rendered, kind: "multipart") as? [[Any]])
            #expect(fields.count == 1, "\(placement): no forged field")
        }
    }
}

@Suite("Mailgun signature")
struct MailgunSignatureTests {
    @Test("the signature is what an independent HMAC (Python's hmac) computes; tokens are 50 fresh characters")
    func signatureMatchesPython() async throws {
        var random = SystemRandomNumberGenerator()
        let token = MailgunSignature.token(using: &random)
        #expect(token.count == 50 && token.allSatisfy { $0.isLowercase || $0.isNumber })
        #expect(MailgunSignature.token(using: &random) != token)
        let key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0 ünï"
        let signed = MailgunSignature(key: key, timestamp: 1_780_000_000, token: token)
        let result = await runProcess(
            "/usr/bin/python3",
            [
                "-c",
                "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), (sys.argv[2] + sys.argv[3]).encode(), hashlib.sha256).hexdigest())",
                key, "1780000000", token,
            ]
        )
        #expect(result.status == 0)
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == signed.signature)
        #expect(MailgunSignature(key: key + "x", timestamp: 1_780_000_000, token: token).signature != signed.signature)
    }
}
