import Foundation
import LMTPHookTestSupport
import Testing
import WebhookClient

/// The curl client against real HTTP servers on loopback.
@Suite("Webhook client (libcurl, loopback)")
struct WebhookClientTests {
    @Test func postsBodyAndHeadersAndReads2xx() async throws {
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 2)
        let body = Array(#"{"hello":"world","n":1}"#.utf8)
        let response = await client.post(
            WebhookRequest(
                url: sink.url + "hooks/in",
                headers: [WebhookHeader("Idempotency-Key", "abc123")],
                body: body
            )
        )
        #expect(response.isSuccess)
        #expect(response.status == 200)
        #expect(response.snippet == #"{"ok":true}"#)
        #expect(response.error == nil)
        let requests = await sink.waitFor(1)
        let request = try #require(requests.first)
        #expect(request.method == "POST")
        #expect(request.path == "/hooks/in")
        #expect(request.body == body)
        let headers = Dictionary(
            request.headers.map { ($0.0.lowercased(), $0.1) },
            uniquingKeysWith: { first, _ in first }
        )
        #expect(headers["content-type"] == "application/json")
        #expect(headers["idempotency-key"] == "abc123")
        #expect(headers["user-agent"]?.hasPrefix("lmtphook/") == true)
        #expect(headers["expect"] == nil)
        await client.shutdown()
        await sink.stop()
    }

    @Test("4xx and 5xx are reported with status and snippet", arguments: [400, 404, 410, 422, 429, 500, 502, 503])
    func errorStatuses(_ status: Int) async throws {
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 1)
        let response = await client.post(WebhookRequest(url: sink.url + "status/\(status)", body: Array("{}".utf8)))
        #expect(!response.isSuccess)
        #expect(response.status == status)
        #expect(response.error == nil)
        #expect(response.snippet.contains("sink answered \(status)"))
        #expect(response.summary == "HTTP \(status)")
        await client.shutdown()
        await sink.stop()
    }

    @Test func redirectsAreNotFollowed() async throws {
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 1)
        let response = await client.post(WebhookRequest(url: sink.url + "status/302", body: Array("{}".utf8)))
        #expect(response.status == 302)
        #expect(!response.isSuccess)
        #expect(sink.requests.count == 1)
        await client.shutdown()
        await sink.stop()
    }

    @Test("a receiver that never answers times out within the total timeout")
    func timeout() async throws {
        let server = try await HangingHTTPServer.start()
        let client = WebhookClient(threads: 1)
        let started = ContinuousClock.now
        let response = await client.post(
            WebhookRequest(
                url: server.url,
                body: Array("{}".utf8),
                connectTimeoutMilliseconds: 500,
                totalTimeoutMilliseconds: 700
            )
        )
        let elapsed = ContinuousClock.now - started
        #expect(response.error?.kind == .timeout)
        #expect(response.status == 0)
        #expect(!response.isSuccess)
        #expect(
            elapsed < .seconds(15),
            "bounded by the 700 ms total timeout, not hanging (generous: the suite runs in parallel)"
        )
        await client.shutdown()
        await server.stop()
    }

    @Test func connectionRefused() async throws {
        let client = WebhookClient(threads: 1)
        let response = await client.post(
            WebhookRequest(url: "http://127.0.0.1:\(unusedTCPPort())/", body: Array("{}".utf8))
        )
        #expect(response.error?.kind == .connect)
        #expect(response.error?.curlCode == 7)
        #expect(!response.isSuccess)
        await client.shutdown()
    }

    @Test(
        "only http and https",
        arguments: ["ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/", "not a url"]
    )
    func refusesOtherSchemes(_ url: String) async {
        let client = WebhookClient(threads: 1)
        let response = await client.post(WebhookRequest(url: url, body: []))
        #expect(response.error?.kind == .refusedURL)
        await client.shutdown()
    }

    @Test("a 3 MB body goes out at once (no Expect: 100-continue stall), byte for byte")
    func largeBody() async throws {
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 1)
        let body = (0..<(3 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let response = await client.post(WebhookRequest(url: sink.url, body: body))
        #expect(response.isSuccess)
        let request = try #require(await sink.waitFor(1).first)
        #expect(request.body == body)
        #expect(!request.headers.contains { $0.0.lowercased() == "expect" })
        await client.shutdown()
        await sink.stop()
    }

    @Test("one delivery thread reuses one connection across requests")
    func connectionReuse() async throws {
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 1)
        for index in 0..<5 {
            let response = await client.post(WebhookRequest(url: sink.url, body: Array("{\"n\":\(index)}".utf8)))
            #expect(response.isSuccess)
        }
        #expect(sink.requests.count == 5)
        #expect(sink.sink.connectionsAccepted == 1)
        await client.shutdown()
        await sink.stop()
    }

    @Test("header values with CR or LF are dropped, not injected")
    func headerInjection() async throws {
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 1)
        let response = await client.post(
            WebhookRequest(
                url: sink.url,
                headers: [WebhookHeader("X-Evil", "a\r\nX-Injected: 1"), WebhookHeader("X-Good", "yes")],
                body: Array("{}".utf8)
            )
        )
        #expect(response.isSuccess)
        let request = try #require(await sink.waitFor(1).first)
        #expect(!request.headers.contains { $0.0.lowercased() == "x-injected" || $0.0.lowercased() == "x-evil" })
        #expect(request.headers.contains { $0.0 == "X-Good" && $0.1 == "yes" })
        await client.shutdown()
        await sink.stop()
    }

    @Test("one transfer thread: a hanging receiver does not hold up another's answer", .timeLimit(.minutes(1)))
    func hangingReceiverDoesNotBlockOthers() async throws {
        let hanging = try await HangingHTTPServer.start()
        let sink = try await RecordingSink.start()
        let client = WebhookClient(threads: 2)
        let stuck = Task { await client.post(WebhookRequest(url: hanging.url, body: Array("{}".utf8))) }
        await hanging.waitForConnections(1)
        let response = await client.post(WebhookRequest(url: sink.url, body: Array("{}".utf8)))
        #expect(response.isSuccess, "answered while the other transfer still hangs")
        #expect(client.load.running == 1, "the hanging one still runs")
        await hanging.stop()  // the hanging transfer ends (connection closed)
        #expect(await stuck.value.error != nil)
        await client.shutdown()
        await sink.stop()
    }

    @Test(
        "at most `threads` transfers at once; the rest wait their turn; shutdown answers the waiting ones",
        .timeLimit(.minutes(1))
    )
    func concurrencyLimitAndShutdown() async throws {
        let hanging = try await HangingHTTPServer.start()
        let client = WebhookClient(threads: 3)
        let (answers, answered) = AsyncStream.makeStream(of: WebhookTransportError.Kind?.self)
        for _ in 0..<5 {
            Task {
                answered.yield(await client.post(WebhookRequest(url: hanging.url, body: Array("{}".utf8))).error?.kind)
            }
        }
        await hanging.waitForConnections(3)
        while client.load != (running: 3, waiting: 2) { await Task.yield() }
        // Shutdown answers the two that never started at once and waits for the three running.
        let stopping = Task { await client.shutdown() }
        var kinds = answers.makeAsyncIterator()
        #expect(await kinds.next() == .shutdown)
        #expect(await kinds.next() == .shutdown)
        await hanging.stop()  // the three running ones end: the receiver closes their connections
        for _ in 0..<3 {
            let kind = await kinds.next()
            #expect(kind != nil && kind != .shutdown, "a running transfer ends on its own")
        }
        await stopping.value
        #expect(hanging.connections == 3, "the waiting two never connected")
    }

    @Test func afterShutdownRequestsFailCleanly() async {
        let client = WebhookClient(threads: 1)
        await client.shutdown()
        let response = await client.post(WebhookRequest(url: "http://127.0.0.1:1/", body: []))
        #expect(response.error?.kind == .shutdown)
    }
}

@Suite("Standard Webhooks signing")
struct WebhookSignatureTests {
    @Test("the specification's test vector")
    func specificationVector() throws {
        let signer = try WebhookSigner(secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        let signature = signer.signature(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1_614_265_330,
            body: Array(#"{"test": 2432232314}"#.utf8)
        )
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test("several secrets give several signatures (rotation)")
    func rotation() throws {
        let signer = try WebhookSigner(secrets: [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_" + Data(repeating: 7, count: 32).base64EncodedString(),
        ])
        let parts = signer.signature(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1_614_265_330,
            body: Array(#"{"test": 2432232314}"#.utf8)
        ).split(separator: " ")
        #expect(parts.count == 2)
        #expect(parts[0] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let headers = signer.headers(id: "x", timestamp: 1, body: [])
        #expect(headers.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
    }

    @Test(arguments: ["whsec_not*base64", "whsec_c2hvcnQ="])
    func badSecrets(_ secret: String) {
        #expect(throws: WebhookSigner.InvalidSecret.self) { try WebhookSigner(secrets: [secret]) }
    }
}
