import Foundation
import LMTPCore
import LMTPHook
import LMTPHookTestSupport
import LMTPServer
import Logging
import NIOConcurrencyHelpers
import Testing

/// Every resource bound of the LMTP side, exercised over real sockets: connection and per-peer
/// limits, the client allow-list, command and DATA deadlines (slow drip), the bounded delivery
/// queue, bodies spilled to disk, socket ownership.
@Suite("Resource bounds over real sockets", .serialized)
struct ResourceBoundsTests {
    /// An in-process server with a handler the test controls.
    struct Server {
        let server: LMTPServer
        let task: Task<Void, any Error>
        let directory: TemporaryDirectory
        let socketPath: String
        let port: Int
        let delivered: NIOLockedValueBox<[LMTPMessage]>

        static func start(
            _ adjust: (inout LMTPServerConfiguration) -> Void = { _ in },
            handler: (@Sendable (LMTPMessage) async -> LMTPRecipientResults)? = nil
        ) async throws -> Server {
            let directory = TemporaryDirectory()
            let socketPath = directory.file("lmtp.sock")
            var configuration = LMTPServerConfiguration(
                listeners: [.unix(path: socketPath), .tcp(host: "127.0.0.1", port: 0)],
                session: LMTPConfiguration(hostname: "bounds.test"),
                shutdownGracePeriod: .seconds(2)
            )
            adjust(&configuration)
            let delivered = NIOLockedValueBox<[LMTPMessage]>([])
            var logger = Logger(label: "bounds")
            logger.logLevel = .critical
            let server = LMTPServer(configuration: configuration, logger: logger) { message in
                delivered.withLockedValue { $0.append(message) }
                if let handler { return await handler(message) }
                return LMTPRecipientResults(all: .delivered())
            }
            let task = Task { try await server.run() }
            let addresses = try await server.waitUntilListening()
            guard case .tcp(_, let port) = addresses.last else {
                throw LMTPServerError("no TCP port")
            }
            return Server(
                server: server,
                task: task,
                directory: directory,
                socketPath: socketPath,
                port: port,
                delivered: delivered
            )
        }

        func tcp() throws -> LMTPClientConnection {
            try LMTPClientConnection(host: "127.0.0.1", port: port, timeoutSeconds: 10)
        }
        func unix() throws -> LMTPClientConnection {
            try LMTPClientConnection(unixPath: socketPath, timeoutSeconds: 10)
        }

        func stop() async throws {
            server.stop()
            try await task.value
            directory.remove()
        }
    }

    @Test("beyond max_connections a client gets 421 4.7.0 and is closed; a freed slot serves again")
    func maxConnections() async throws {
        let server = try await Server.start { $0.maxConnections = 3 }
        try await blocking {
            let open = try (0..<3).map { index -> LMTPClientConnection in
                let client = index == 0 ? try server.unix() : try server.tcp()
                #expect(try client.readReply().code == 220)
                return client
            }
            let refused = try server.tcp()
            let reply = try refused.readReply()
            #expect(reply.code == 421)
            #expect(reply.lines.last == "4.7.0 bounds.test Error: too many connections, try again later")
            #expect(refused.readsEndOfStream())
            try open[1].send("QUIT\r\n")
            #expect(try open[1].readReply().code == 221)
            #expect(open[1].readsEndOfStream())
            var served = false
            for _ in 0..<50 where !served {  // the server sees the close a moment later
                let again = try server.tcp()
                served = try again.readReply().code == 220
                if !served { usleep(20_000) }
            }
            #expect(served)
        }
        try await server.stop()
    }

    @Test("one TCP peer may hold max_connections_per_peer connections; UNIX-socket clients are not counted")
    func perPeerLimit() async throws {
        let server = try await Server.start { $0.maxConnectionsPerPeer = 2 }
        try await blocking {
            let first = try server.tcp()
            let second = try server.tcp()
            #expect(try first.readReply().code == 220)
            #expect(try second.readReply().code == 220)
            let third = try server.tcp()
            let reply = try third.readReply()
            #expect(reply.code == 421)
            #expect(reply.lines.last?.contains("too many connections from your address") == true)
            #expect(third.readsEndOfStream())
            let local = try server.unix()
            #expect(try local.readReply().code == 220)
            _ = [first, second]
        }
        try await server.stop()
    }

    @Test(
        "TCP clients outside the allow-list get 421 4.7.1 and are closed; listed networks and the UNIX socket are served"
    )
    func allowList() async throws {
        let denying = try await Server.start {
            $0.allowedClients = [LMTPClientNetwork("192.0.2.0/24")!, LMTPClientNetwork("2001:db8::/32")!]
        }
        try await blocking {
            let outsider = try denying.tcp()
            let reply = try outsider.readReply()
            #expect(reply.code == 421)
            #expect(reply.lines.last == "4.7.1 bounds.test Error: client not allowed")
            #expect(outsider.readsEndOfStream())
            #expect(try denying.unix().readReply().code == 220)
        }
        #expect(denying.delivered.withLockedValue { $0.isEmpty })
        try await denying.stop()
        let allowing = try await Server.start { $0.allowedClients = [LMTPClientNetwork("127.0.0.0/8")!] }
        try await blocking {
            let client = try allowing.tcp()
            #expect(
                try client.deliver(from: "a@example.org", to: ["b@example.test"], message: sampleMessage()).map(\.code)
                    == [250]
            )
        }
        try await allowing.stop()
    }

    @Test(arguments: [
        ("192.0.2.7", "192.0.2.0/24", true), ("192.0.3.7", "192.0.2.0/24", false),
        ("::ffff:192.0.2.7", "192.0.2.0/24", true),
        ("2001:db8::1", "2001:db8::/32", true), ("2001:db9::1", "2001:db8::/32", false), ("10.1.2.3", "10.1.2.3", true),
        ("10.1.2.4", "10.1.2.3", false), ("127.0.0.1", "0.0.0.0/0", true), ("::1", "::1", true),
        ("fe80::1%eth0", "fe80::/10", true),
    ])
    func clientNetworks(address: String, network: String, contained: Bool) throws {
        let parsed = try #require(LMTPClientNetwork(network))
        #expect(parsed.contains(address) == contained)
    }

    @Test(arguments: ["", "10.0.0.0/33", "10.0.0/8", "::/129", "example.net", "10.0.0.0/-1", "10.0.0.0/8/8"])
    func invalidClientNetworks(text: String) {
        #expect(LMTPClientNetwork(text) == nil)
    }

    @Test("a command dripped a byte at a time is cut off at the command timeout; complete commands reset it")
    func commandTimeoutAgainstDrip() async throws {
        let timeout = 1_200  // ms; every margin below is a fraction or multiple of it
        let server = try await Server.start { $0.idleTimeout = .milliseconds(timeout) }
        try await blocking {
            let patient = try server.tcp()
            _ = try patient.readReply()
            let patientStarted = ContinuousClock.now
            // 6 pauses of a quarter of the timeout: longer than it in all, but every command completes in time
            for _ in 0..<6 {
                try patient.send("NOOP\r\n")
                #expect(try patient.readReply().code == 250)
                usleep(useconds_t(timeout / 4 * 1000))
            }
            #expect(
                ContinuousClock.now - patientStarted > .milliseconds(timeout),
                "the patient client outlived one timeout"
            )
            try patient.send("NOOP\r\n")
            #expect(try patient.readReply().code == 250, "still served")
            let dripper = try server.tcp()
            _ = try dripper.readReply()
            let started = ContinuousClock.now
            // never a line end, a byte every tenth of the timeout
            for byte in String(repeating: "NOOP ", count: 20).utf8 {
                guard (try? dripper.send([byte])) != nil else { break }
                usleep(useconds_t(timeout / 10 * 1000))
                if ContinuousClock.now - started > .milliseconds(timeout * 3 / 2) { break }
            }
            let reply = try dripper.readReply()
            let elapsed = ContinuousClock.now - started
            #expect(reply.code == 421)
            #expect(reply.lines.last == "4.4.2 bounds.test Error: timeout exceeded")
            #expect(elapsed >= .milliseconds(timeout), "cut off after \(elapsed), before the timeout")
            #expect(elapsed < .milliseconds(timeout) + .seconds(3), "cut off after \(elapsed)")
        }
        try await server.stop()
    }

    @Test("a client that sends DATA slower than min_data_rate gets 421 4.4.2; nothing is delivered")
    func slowDataIsCutOff() async throws {
        let server = try await Server.start {
            $0.dataTimeout = .seconds(1)
            $0.minimumDataRate = 1000
        }
        try await blocking {
            let client = try server.tcp()
            _ = try client.readReply()
            try client.send("LHLO drip\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
            #expect(try client.readReplies(4).map(\.code) == [250, 250, 250, 354])
            // 20 bytes every 100 ms for 1.5 s = 200 B/s: never silent, but far below 1000 B/s.
            for _ in 0..<15 {
                guard (try? client.send(Array(repeating: UInt8(ascii: "x"), count: 18) + [13, 10])) != nil else {
                    break
                }
                usleep(100_000)
            }
            let reply = try client.readReply()
            #expect(reply.code == 421)
            #expect(reply.lines.last == "4.4.2 bounds.test Error: timeout exceeded (data rate too low)")
        }
        #expect(server.delivered.withLockedValue { $0.isEmpty })
        // A fast client with a pause shorter than the timeout is served.
        try await blocking {
            let client = try server.tcp()
            _ = try client.readReply()
            try client.send("LHLO fast\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
            _ = try client.readReplies(4)
            try client.send(Array(repeating: UInt8(ascii: "y"), count: 50_000) + [13, 10])
            usleep(500_000)
            try client.send(".\r\n")
            #expect(try client.readReply().code == 250)
        }
        try await server.stop()
    }

    @Test(
        "the delivery queue is bounded: a message beyond slots + queue gets 451 4.3.2 at once, the others are delivered"
    )
    func boundedDeliveryQueue() async throws {
        let gate = NIOLockedValueBox<[CheckedContinuation<Void, Never>]>([])
        let server = try await Server.start(
            {
                $0.maxConcurrentDeliveries = 1
                $0.maxQueuedDeliveries = 1
            },
            handler: { message in
                await withCheckedContinuation { continuation in gate.withLockedValue { $0.append(continuation) } }
                return LMTPRecipientResults(all: .delivered())
            }
        )
        let first = Task {
            try await blocking {
                try server.tcp().deliver(from: "a@example.org", to: ["one@example.test"], message: sampleMessage()).map(
                    \.code
                )
            }
        }
        while server.server.deliveryLoad.active < 1 { try await Task.sleep(for: .milliseconds(10)) }
        let second = Task {
            try await blocking {
                try server.tcp().deliver(from: "a@example.org", to: ["two@example.test"], message: sampleMessage()).map(
                    \.code
                )
            }
        }
        while server.server.deliveryLoad.waiting < 1 { try await Task.sleep(for: .milliseconds(10)) }
        let third = try await blocking {
            try server.tcp().deliver(
                from: "a@example.org",
                to: ["three@example.test", "four@example.test"],
                message: sampleMessage()
            )
        }
        #expect(third.map(\.code) == [451, 451])
        #expect(third[0].lines.last == "4.3.2 <three@example.test> Too busy, try again later")
        for _ in 0..<2 {
            while gate.withLockedValue({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(10)) }
            gate.withLockedValue { $0.removeFirst() }.resume()
        }
        #expect(try await first.value == [250])
        #expect(try await second.value == [250])
        #expect(server.server.deliveryLoad == (0, 0))
        try await server.stop()
    }

    @Test("message bytes in delivery are bounded: a second big message waits until the first is done")
    func deliveryByteBudget() async throws {
        let gate = NIOLockedValueBox<[CheckedContinuation<Void, Never>]>([])
        let server = try await Server.start(
            { $0.maxDeliveryBytes = 10_000 },
            handler: { message in
                if message.data.count > 1000 {
                    await withCheckedContinuation { continuation in gate.withLockedValue { $0.append(continuation) } }
                }
                return LMTPRecipientResults(all: .delivered())
            }
        )
        let big = sampleMessage(body: String(repeating: "b", count: 6000) + "\r\n")
        let first = Task {
            try await blocking {
                try server.tcp().deliver(from: "a@example.org", to: ["one@example.test"], message: big).map(\.code)
            }
        }
        while server.server.deliveryLoad.active < 1 { try await Task.sleep(for: .milliseconds(10)) }
        let second = Task {
            try await blocking {
                try server.tcp().deliver(from: "a@example.org", to: ["two@example.test"], message: big).map(\.code)
            }
        }
        while server.server.deliveryLoad.waiting < 1 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(
            server.server.deliveryLoad == (1, 1),
            "6,000 + 6,000 bytes exceed the 10,000-byte budget: the second waits"
        )
        gate.withLockedValue { $0.removeFirst() }.resume()
        #expect(try await first.value == [250])
        while gate.withLockedValue({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(server.server.deliveryLoad == (1, 0))
        gate.withLockedValue { $0.removeFirst() }.resume()
        #expect(try await second.value == [250])
        try await server.stop()
    }

    @Test(
        "bodies above the in-memory limit go to a file in the spill directory while they arrive; the handler gets every byte; no file remains"
    )
    func spillToDisk() async throws {
        let spillDirectory = TemporaryDirectory()
        let spilling = try await Server.start {
            $0.session.spillThreshold = 64 * 1024
            $0.spillDirectory = spillDirectory.path + "/incoming"
        }
        let body = (0..<40_000).map { "line \($0) of a big message\r\n" }.joined()  // ~1.1 MB
        let message = Array("Subject: big\r\n\r\n\(body)".utf8)
        try await blocking {
            let client = try spilling.tcp()
            _ = try client.readReply()
            try client.send("LHLO big\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
            _ = try client.readReplies(4)
            try client.send(Array(message.prefix(600_000)))
            var files: [String] = []
            for _ in 0..<100 where files.isEmpty {
                usleep(20_000)
                files = (try? FileManager.default.contentsOfDirectory(atPath: spillDirectory.path + "/incoming")) ?? []
            }
            #expect(files.count == 1)
            #expect(files.first?.hasPrefix("lmtp-incoming-") == true)
            try client.send(Array(message.dropFirst(600_000)) + Array(".\r\n".utf8))
            #expect(try client.readReply().code == 250)
        }
        let delivered = spilling.delivered.withLockedValue { $0 }
        #expect(delivered.count == 1)
        #expect(delivered.first?.data == message)
        #expect(delivered.first?.spilledBytes == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: spillDirectory.path + "/incoming").isEmpty)
        // A connection lost mid-DATA leaves no file behind.
        try await blocking {
            let client = try spilling.tcp()
            _ = try client.readReply()
            try client.send("LHLO big\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
            _ = try client.readReplies(4)
            try client.send(Array(message.prefix(300_000)))
        }
        // Removed when the server notices the closed connection (within 20 s, also in a loaded suite).
        var leftovers: [String] = ["?"]
        for _ in 0..<1_000 where !leftovers.isEmpty {
            try await Task.sleep(for: .milliseconds(20))
            leftovers = try FileManager.default.contentsOfDirectory(atPath: spillDirectory.path + "/incoming")
        }
        #expect(leftovers.isEmpty)
        try await spilling.stop()
        spillDirectory.remove()
    }

    @Test(
        "spill files nobody holds are removed at start, also one named with this very PID (a container's PID 1); one a live process holds is kept, and new spills never collide"
    )
    func spillLeftovers() async throws {
        let directory = TemporaryDirectory()
        let incoming = directory.path + "/incoming"
        mkdir(incoming, 0o700)
        writeFile(incoming + "/lmtp-incoming-999999999-1", "partial message of a dead process")
        // The earlier naming (PID + counter) with the PID this process has now: the previous
        // container's PID 1 left it; it made every spilled message fail with "File exists".
        for number in 1...3 {
            writeFile(incoming + "/lmtp-incoming-\(getpid())-\(number)", "left by an earlier PID \(getpid())")
        }
        writeFile(incoming + "/lmtp-incoming-1-held", "another live server is writing this one")
        writeFile(incoming + "/unrelated", "kept")
        let holder = open(incoming + "/lmtp-incoming-1-held", O_RDONLY)
        defer { close(holder) }
        #expect(flock(holder, LOCK_EX) == 0)
        let server = try await Server.start {
            $0.session.spillThreshold = 64 * 1024
            $0.spillDirectory = incoming
        }
        #expect(
            Set(try FileManager.default.contentsOfDirectory(atPath: incoming)) == ["lmtp-incoming-1-held", "unrelated"]
        )
        // Leftovers of the old naming again, written after start: spilling still works.
        for number in 1...3 { writeFile(incoming + "/lmtp-incoming-\(getpid())-\(number)", "stale") }
        let message = Array("Subject: big\r\n\r\n\(String(repeating: "x", count: 200_000))\r\n".utf8)
        try await blocking {
            let client = try server.tcp()
            _ = try client.readReply()
            try client.send("LHLO big\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
            _ = try client.readReplies(4)
            try client.send(message + Array(".\r\n".utf8))
            #expect(try client.readReply().code == 250)
        }
        #expect(server.delivered.withLockedValue { $0 }.first?.data == message)
        try await server.stop()
        directory.remove()
    }

    @Test("UNIX socket owner and group are applied after binding", .requires(.root))
    func socketOwnerAndGroup() async throws {
        let server = try await Server.start {
            $0.unixSocketOwner = "nobody"
            $0.unixSocketGroup = "nogroup"
        }
        var info = stat()
        #expect(stat(server.socketPath, &info) == 0)
        #expect(info.st_uid == getpwnam("nobody").pointee.pw_uid)
        #expect(info.st_gid == getgrnam("nogroup").pointee.gr_gid)
        try await server.stop()
        let wrong = LMTPServer(
            configuration: LMTPServerConfiguration(
                listeners: [.unix(path: TemporaryDirectory().file("x.sock"))],
                unixSocketOwner: "no-such-user-here"
            )
        ) { _ in LMTPRecipientResults() }
        await #expect(throws: LMTPServerError.self) { try await wrong.run() }
    }

    @Test(
        "stopping a server while clients keep connecting does not trap (an accepted, unserved connection: swift-nio #3481)"
    )
    func stopWhileConnecting() async throws {
        var connected = 0
        var stoppedWhileConnecting = 0
        for _ in 0..<40 {
            let server = try await Server.start { $0.shutdownGracePeriod = .milliseconds(200) }
            let path = server.socketPath
            // The client connects until the server refuses it, so every stop lands while it is connecting
            // (a bounded loop: a server that never stops accepting ends the test rather than hanging it).
            let connecting = NIOLockedValueBox(false)
            let hammer = Task.detached { () -> (connections: Int, refused: Bool) in
                for count in 0..<1_000_000 {
                    let fd = UnixDomainSocket.connect(path)
                    if fd < 0 { return (count, true) }
                    close(fd)
                    connecting.withLockedValue { $0 = true }
                }
                return (1_000_000, false)
            }
            while !connecting.withLockedValue({ $0 }) { try await Task.sleep(for: .milliseconds(1)) }
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...5)))
            try await server.stop()  // a trap here (swift-nio #3481) ends the whole test process
            let result = await hammer.value
            connected += result.connections
            if result.refused { stoppedWhileConnecting += 1 }
            #expect(UnixDomainSocket.connect(path) < 0, "the stopped server no longer accepts")
        }
        #expect(connected > 0, "the clients did connect")
        #expect(
            stoppedWhileConnecting == 40,
            "every stop came while a client was still connecting: \(stoppedWhileConnecting) of 40"
        )
    }

    @Test(
        "TCP listen addresses: a missing host is 127.0.0.1",
        arguments: [
            (":2424", "127.0.0.1", 2424), ("127.0.0.1:25", "127.0.0.1", 25), ("0.0.0.0:0", "0.0.0.0", 0),
            ("[::1]:2424", "::1", 2424),
            ("2424", nil, 0), ("[::1]2424", nil, 0), ("::1:2424", nil, 0), (":70000", nil, 0), ("a.test:x", nil, 0),
        ]
    )
    func listenAddresses(text: String, host: String?, port: Int) {
        let parsed = LMTPListenAddress.parseTCP(text)
        if let host {
            #expect(parsed == .tcp(host: host, port: port), "\(text)")
        } else {
            #expect(parsed == nil, "\(text)")
        }
    }

    @Test(
        "a listener given without a host binds 127.0.0.1; a non-loopback one without an allow-list logs a warning at start"
    )
    func defaultBindAndExposureWarning() async throws {
        for (listen, allowList, warns) in [
            (":0", nil, false), ("0.0.0.0:0", nil, true), ("0.0.0.0:0", ["127.0.0.1"], false),
        ] as [(String, [String]?, Bool)] {
            let log = CapturedLog()
            let address = try #require(LMTPListenAddress.parseTCP(listen))
            var configuration = LMTPServerConfiguration(listeners: [address], shutdownGracePeriod: .seconds(1))
            configuration.allowedClients = allowList?.compactMap(LMTPClientNetwork.init)
            let server = LMTPServer(configuration: configuration, logger: log.logger()) { message in
                LMTPRecipientResults(all: .delivered())
            }
            let task = Task { try await server.run() }
            let bound = try await server.waitUntilListening()
            if listen == ":0" {
                #expect(bound.count == 1 && bound[0].description.hasPrefix("127.0.0.1:"), "bound \(bound)")
                if case .tcp(_, let port) = bound.first { #expect(port > 0, "the port the system gave") }
            }
            let warnings = log.lines(.warning, containing: "non-loopback address without an allow-list")
            #expect(
                warnings.count == (warns ? 1 : 0),
                "\(listen), allow-list \(String(describing: allowList)): \(log.lines)"
            )
            server.stop()
            try await task.value
        }
    }

    @Test("invalid server bounds are refused at start with a message naming them")
    func invalidBounds() async throws {
        let cases: [(LMTPServerConfiguration, String)] = [
            (
                LMTPServerConfiguration(listeners: [.tcp(host: "127.0.0.1", port: 0)], maxConnections: 0),
                "max connections"
            ),
            (
                LMTPServerConfiguration(listeners: [.tcp(host: "127.0.0.1", port: 0)], maxConcurrentDeliveries: 0),
                "max concurrent deliveries"
            ),
            (
                LMTPServerConfiguration(
                    listeners: [.tcp(host: "127.0.0.1", port: 0)],
                    session: LMTPConfiguration(spillThreshold: 65536)
                ), "spill directory"
            ),
        ]
        for (configuration, text) in cases {
            #expect(throws: LMTPServerError.self) { try configuration.validate() }
            do { try configuration.validate() } catch { #expect(error.description.contains(text)) }
        }
    }
}
