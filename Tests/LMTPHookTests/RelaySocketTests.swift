import Foundation
import LMTPCore
import LMTPHook
import LMTPHookTestSupport
import LMTPServer
import Testing

@Suite("Relay over real sockets", .serialized)
struct RelaySocketTests {
    @Test("UNIX socket: two recipients, one POST, one 250 each, the JSON carries the envelope and raw bytes")
    func unixSocketTransaction() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url + "in")
        let message = sampleMessage()
        let replies = try await blocking {
            let client = try LMTPClientConnection(unixPath: relay.socketPath)
            return try client.deliver(
                from: "a@example.org",
                to: ["b@example.test", "c@example.test"],
                message: message
            )
        }
        #expect(replies.map(\.code) == [250, 250])
        #expect(replies[0].lines.last?.hasPrefix("2.0.0 <b@example.test> delivered id=") == true)
        #expect(replies[1].lines.last?.hasPrefix("2.0.0 <c@example.test> delivered id=") == true)
        let requests = await sink.waitFor(1)
        #expect(requests.count == 1)
        let document = try json(try #require(requests.first).body)
        #expect(document["schema"] as? Int == 1)
        #expect(document["subject"] as? String == "Hello")
        #expect(document["message_id"] as? String == "<m1@example.org>")
        let envelope = try #require(document["envelope"] as? [String: Any])
        #expect(envelope["size"] as? Int == message.count)
        #expect((document["from"] as? [[String: Any]])?.first?["address"] as? String == "a@example.org")
        #expect(document["text"] as? String == "Body line\n.dot line\n")
        #expect(envelope["mail_from"] as? String == "a@example.org")
        #expect(envelope["rcpt_to"] as? [String] == ["b@example.test", "c@example.test"])
        let rawBase64 = try #require(document["raw_base64"] as? String)
        let raw = try #require(Data(base64Encoded: rawBase64))
        #expect(Array(raw) == message)
        let id = try #require(document["id"] as? String)
        #expect(replies[0].lines.last?.hasSuffix(id) == true)
        #expect(requests[0].headers.contains { $0.0 == "Idempotency-Key" && $0.1 == id })
        try await relay.stop()
        await sink.stop()
    }

    @Test("TCP: a transaction with XFORWARD data")
    func tcpTransactionWithXForward() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        let replies = try await blocking {
            let client = try LMTPClientConnection(host: "127.0.0.1", port: relay.tcpPort)
            _ = try client.readReply()
            try client.send(
                "LHLO mx.test\r\nXFORWARD NAME=mail.example ADDR=192.0.2.1 PORT=25\r\nXFORWARD IDENT=4ABC PROTO=ESMTP SOURCE=REMOTE\r\n"
            )
            _ = try client.readReplies(3)
            return try client.deliver(lhlo: nil, from: "", to: ["b@example.test"], message: sampleMessage())
        }
        #expect(replies.map(\.code) == [250])
        let document = try json(try #require(await sink.waitFor(1).first).body)
        let envelope = try #require(document["envelope"] as? [String: Any])
        #expect(envelope["mail_from"] as? String == "")
        let client = try #require(envelope["client"] as? [String: Any])
        #expect(client["addr"] as? String == "192.0.2.1")
        #expect(client["ident"] as? String == "4ABC")
        #expect(client["name"] as? String == "mail.example")
        try await relay.stop()
        await sink.stop()
    }

    @Test("50 concurrent connections each deliver a message")
    func fiftyConcurrentConnections() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        let codes = try await withThrowingTaskGroup(of: [Int].self) { group in
            for index in 0..<50 {
                group.addTask {
                    try await blocking {
                        let client =
                            index % 2 == 0
                            ? try LMTPClientConnection(unixPath: relay.socketPath)
                            : try LMTPClientConnection(host: "127.0.0.1", port: relay.tcpPort)
                        return try client.deliver(
                            from: "a@example.org",
                            to: ["r\(index)@example.test"],
                            message: sampleMessage(subject: "n\(index)")
                        ).map(\.code)
                    }
                }
            }
            var all: [[Int]] = []
            for try await codes in group { all.append(codes) }
            return all
        }
        #expect(codes.count == 50)
        #expect(codes.allSatisfy { $0 == [250] })
        let requests = await sink.waitFor(50)
        let subjects = Set(try requests.map { try json($0.body)["subject"] as? String ?? "" })
        #expect(subjects == Set((0..<50).map { "n\($0)" }))
        try await relay.stop()
        await sink.stop()
    }

    @Test("200 connections open at the same time, each then completes a transaction")
    func twoHundredOpenConnections() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        let codes = try await blocking { () -> [Int] in
            // All 200 are connected and greeted before any of them sends a transaction.
            let clients = try (0..<200).map { index -> LMTPClientConnection in
                let client =
                    index % 2 == 0
                    ? try LMTPClientConnection(unixPath: relay.socketPath)
                    : try LMTPClientConnection(host: "127.0.0.1", port: relay.tcpPort)
                _ = try client.readReply()
                return client
            }
            for (index, client) in clients.enumerated() {
                try client.send(
                    "LHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<r\(index)@d.test>\r\nDATA\r\nSubject: c\(index)\r\n\r\nx\r\n.\r\n"
                )
            }
            return try clients.flatMap { try $0.readReplies(5).map(\.code) }
        }
        #expect(codes.count == 1000)
        #expect(codes.allSatisfy { $0 == 250 || $0 == 354 })
        #expect(await sink.waitFor(200).count == 200)
        try await relay.stop()
        await sink.stop()
    }

    @Test("webhook answers 500: 451 4.3.0 for every recipient, so the MTA keeps the mail")
    func webhookFailureDefers() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url + "status/500")
        let replies = try await blocking {
            try LMTPClientConnection(unixPath: relay.socketPath).deliver(
                from: "a@example.org",
                to: ["b@example.test", "b@example.test"],
                message: sampleMessage()
            )
        }
        #expect(replies.map(\.code) == [451, 451])
        #expect(
            replies.allSatisfy { $0.lines.last?.hasPrefix("4.3.0 <b@example.test> webhook failed (HTTP 500") == true }
        )
        try await relay.stop()
        await sink.stop()
    }

    @Test("webhook unreachable or hanging: 451 4.3.0 within the timeout")
    func webhookUnreachable() async throws {
        let hanging = try await HangingHTTPServer.start()
        let timeout = 800  // ms, the webhook's total timeout
        for (url, hangs) in [("http://127.0.0.1:\(unusedTCPPort())/", false), (hanging.url, true)] {
            let relay = try await RunningRelay.start(webhookURL: url, webhookTimeoutMilliseconds: timeout)
            let started = ContinuousClock.now
            let replies = try await blocking {
                try LMTPClientConnection(unixPath: relay.socketPath).deliver(
                    from: "a@example.org",
                    to: ["b@example.test"],
                    message: sampleMessage()
                )
            }
            let elapsed = ContinuousClock.now - started
            #expect(replies.map(\.code) == [451], "\(url)")
            #expect(replies.first?.lines.last?.hasPrefix("4.3.0 <b@example.test>") == true, "\(replies)")
            // Refused at once, or cut off by the timeout: never before it, and not long after it.
            if hangs {
                #expect(
                    elapsed >= .milliseconds(timeout),
                    "answered after \(elapsed), before the \(timeout) ms timeout"
                )
            }
            #expect(elapsed < .milliseconds(timeout) + .seconds(4), "\(url): answered after \(elapsed)")
            try await relay.stop()
        }
        await hanging.stop()
    }

    @Test("a whole pipelined group in one write, with QUIT after the dot")
    func pipelinedBurst() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        let summary = try await blocking {
            let client = try LMTPClientConnection(unixPath: relay.socketPath)
            try client.send(
                "LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<nobody>\r\nRCPT TO:<e@d.test>\r\nDATA\r\nSubject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n"
            )
            let replies = try client.readReplies(10)
            return (replies.map(\.code), client.readsEndOfStream())
        }
        #expect(summary.0 == [220, 250, 250, 250, 501, 250, 354, 250, 250, 221])
        #expect(summary.1)
        try await relay.stop()
        await sink.stop()
    }

    @Test("disconnect in DATA: nothing is posted")
    func disconnectInData() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        try await blocking {
            let client = try LMTPClientConnection(unixPath: relay.socketPath)
            try client.send(
                "LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: half\r\n\r\nhalf a mess"
            )
            _ = try client.readReplies(5)
        }
        // Send a complete message on another connection; once it is posted, the first had its chance.
        _ = try await blocking {
            try LMTPClientConnection(unixPath: relay.socketPath).deliver(
                from: "a@b.test",
                to: ["c@d.test"],
                message: sampleMessage(subject: "whole")
            )
        }
        let requests = await sink.waitFor(1)
        try await Task.sleep(for: .milliseconds(200))
        #expect(sink.requests.count == 1)
        #expect(try json(requests[0].body)["subject"] as? String == "whole")
        try await relay.stop()
        await sink.stop()
    }

    @Test("idle connections get 421 4.4.2 and are closed")
    func idleTimeout() async throws {
        let relay = try await RunningRelay.start(webhookURL: "http://127.0.0.1:1/", idleTimeout: .seconds(1))
        let (reply, closed) = try await blocking {
            let client = try LMTPClientConnection(unixPath: relay.socketPath, timeoutSeconds: 10)
            _ = try client.readReply()
            try client.send("LHLO x\r\n")
            _ = try client.readReply()
            let reply = try client.readReply()
            return (reply, client.readsEndOfStream())
        }
        #expect(reply.code == 421)
        #expect(reply.lines.last == "4.4.2 relay.test Error: timeout exceeded")
        #expect(closed)
        try await relay.stop()
    }

    @Test("the socket gets the configured mode and is removed at shutdown")
    func socketModeAndCleanup() async throws {
        let relay = try await RunningRelay.start(webhookURL: "http://127.0.0.1:1/", socketMode: 0o600)
        var info = stat()
        #expect(lstat(relay.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        relay.relay.stop()
        try await relay.task.value
        #expect(lstat(relay.socketPath, &info) != 0)
        relay.directory.remove()
    }

    @Test("a stale socket file is replaced; a live one and a non-socket are refused")
    func staleAndLiveSockets() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("s.sock")
        // A stale socket: bound, then its process "died" (closed without unlink).
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        close(fd)

        let first = LMTPServer(configuration: .init(listeners: [.unix(path: path)])) { message in
            LMTPRecipientResults(all: .delivered())
        }
        let firstTask = Task { try await first.run() }
        _ = try await first.waitUntilListening()

        let second = LMTPServer(configuration: .init(listeners: [.unix(path: path)])) { message in
            LMTPRecipientResults(all: .delivered())
        }
        await #expect { try await second.run() } throws: { "\($0)".contains("already listening on \(path)") }

        first.stop()
        try await firstTask.value

        let plainFile = directory.file("plain")
        writeFile(plainFile, "not a socket")
        let third = LMTPServer(configuration: .init(listeners: [.unix(path: plainFile)])) { message in
            LMTPRecipientResults(all: .delivered())
        }
        await #expect { try await third.run() } throws: { "\($0)".contains("is not a socket") }
        #expect(readFile(plainFile) == Array("not a socket".utf8))
        directory.remove()
    }

    @Test("shutdown: idle connections get 421 4.3.2, a message in DATA finishes first")
    func gracefulShutdown() async throws {
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        let idle = try await blocking { () -> LMTPClientConnection in
            let client = try LMTPClientConnection(unixPath: relay.socketPath)
            _ = try client.readReply()
            try client.send("LHLO x\r\n")
            _ = try client.readReply()
            return client
        }
        let busy = try await blocking { () -> LMTPClientConnection in
            let client = try LMTPClientConnection(unixPath: relay.socketPath)
            try client.send(
                "LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nSubject: late\r\n\r\nfirst half\r\n"
            )
            _ = try client.readReplies(5)
            return client
        }
        relay.relay.stop()
        let idleReply = try await blocking { try idle.readReply() }
        #expect(idleReply.code == 421)
        #expect(idleReply.lines.last == "4.3.2 relay.test Service shutting down")
        let busyReplies = try await blocking { () -> [LMTPClientConnection.Reply] in
            try busy.send("second half\r\n.\r\n")
            return try busy.readReplies(2)
        }
        #expect(busyReplies.map(\.code) == [250, 421])
        try await relay.task.value
        #expect(sink.requests.count == 1)
        var info = stat()
        #expect(lstat(relay.socketPath, &info) != 0)
        relay.directory.remove()
        await sink.stop()
    }
}
