import Foundation
import LMTPHookTestSupport
import MessageData
import Testing
import WebhookClient

#if canImport(Glibc)
import Glibc
#endif

/// Request bodies read from a message file while curl sends them (read callback), with the
/// Standard Webhooks signature computed on the client's thread over exactly those bytes.
@Suite("Webhook client: bodies streamed from a file")
struct StreamedBodyTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    @Test("a 3 MB message base64-encoded into the body while it is sent: same bytes, Content-Length, signature")
    func streamedAndSigned() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("message")
        let message = (0..<3_000_001).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        try Data(message).write(to: URL(fileURLWithPath: path))
        let file = try MessageFile(opening: path)
        unlink(path)  // read through the open descriptor from here on
        let body = RequestBody([.bytes(Array("{\"raw\":\"".utf8)), .base64(.file(file)), .bytes(Array("\"}".utf8))])
        let expected = Array("{\"raw\":\"\(Data(message).base64EncodedString())\"}".utf8)
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 2)
        let signer = try WebhookSigner(secrets: [Self.secret])
        var request = WebhookRequest(
            url: sink.url + "in",
            headers: [WebhookHeader("webhook-id", "msg_1"), WebhookHeader("webhook-timestamp", "1700000000")],
            body: body
        )
        request.signing = WebhookSigning(signer: signer, id: "msg_1", timestamp: 1_700_000_000)
        for _ in 0..<2 {  // twice: the second reuses the connection
            let response = await client.post(request)
            #expect(response.isSuccess, "\(response.summary)")
        }
        let received = await sink.waitFor(2)
        #expect(received.count == 2)
        for got in received {
            #expect(got.body == expected)
            let headers = Dictionary(got.headers.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { a, _ in a })
            #expect(headers["content-length"] == "\(expected.count)")
            #expect(headers["transfer-encoding"] == nil)
            #expect(
                headers["webhook-signature"] == signer.signature(id: "msg_1", timestamp: 1_700_000_000, body: expected)
            )
        }
        await client.shutdown()
        await sink.stop()
    }

    @Test("a body whose file cannot be read fails the attempt with a clear transport error, nothing half-sent counts")
    func unreadableFile() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("message")
        try Data(repeating: 0x41, count: 100_000).write(to: URL(fileURLWithPath: path))
        let file = try MessageFile(opening: path)
        truncate(path, 10)  // the file is shorter than when it was opened
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 1)
        let response = await client.post(
            WebhookRequest(url: sink.url + "in", body: RequestBody([.base64(.file(file))]))
        )
        #expect(!response.isSuccess)
        #expect(response.error?.message.contains("cannot read the message") == true, "\(response.summary)")
        await client.shutdown()
        await sink.stop()
    }
}
