import Foundation
import LMTPHook
import LMTPHookTestSupport
import Spool
import Testing

/// A throwaway Postfix instance (Debian's package) in a temp directory: SMTP in on a loopback
/// port, LMTP out to lmtphook's UNIX socket. No system configuration is touched. Its main.cf and
/// master.cf end with the shipped `deploy/postfix/` snippets (example.com → example.test), and
/// the socket directory inside its queue directory is set up as `deploy/install.sh` does.
struct PostfixInstance {
    let directory: TemporaryDirectory
    let smtpPort: Int
    var config: String { directory.file("conf") }
    var maillog: String { directory.file("maillog") }
    /// Where lmtphook must listen: `lmtphook/lmtp.sock` under the queue directory, as the snippet says.
    var socketPath: String { socket("lmtp.sock") }

    /// A socket in the queue directory's `lmtphook/` (group postfix, setgid), as the snippets name them.
    func socket(_ name: String) -> String { directory.file("spool/lmtphook/\(name)") }

    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/postfix") }
    static let deploy = Binary.packageRoot.appendingPathComponent("deploy/postfix").path

    /// Writes the configuration with `deploy/postfix/MAIN` appended; ``start()`` starts it.
    init(main: String = "main.cf", replacing replacements: [String: String] = [:]) throws {
        directory = TemporaryDirectory("lmtphook-postfix")
        smtpPort = unusedTCPPort()
        let lab = directory.path
        run("/bin/chmod", ["755", lab])  // Postfix daemons run as user postfix
        for sub in ["conf", "spool", "data"] {
            try FileManager.default.createDirectory(atPath: "\(lab)/\(sub)", withIntermediateDirectories: true)
        }
        run("/bin/chown", ["postfix:postfix", "\(lab)/data"])
        run("/bin/chmod", ["700", "\(lab)/data"])
        // The socket directory exactly as deploy/install.sh makes it: group postfix, setgid, 2750.
        try FileManager.default.createDirectory(atPath: "\(lab)/spool/lmtphook", withIntermediateDirectories: true)
        run("/bin/chown", ["root:postfix", "\(lab)/spool/lmtphook"])
        run("/bin/chmod", ["2750", "\(lab)/spool/lmtphook"])
        func snippet(_ name: String) throws -> String {
            guard let bytes = readFile("\(Self.deploy)/\(name)") else {
                throw PostfixFailure(description: "deploy/postfix/\(name) is missing")
            }
            var text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(
                of: "example.com",
                with: "example.test"
            )
            for (old, new) in replacements { text = text.replacingOccurrences(of: old, with: new) }
            return text
        }
        let mainSnippet = try snippet(main)
        let masterSnippet = try snippet("master.cf")
        writeFile(
            "\(lab)/conf/main.cf",
            """
            compatibility_level = 3.7
            queue_directory = \(lab)/spool
            data_directory = \(lab)/data
            maillog_file = \(lab)/maillog
            maillog_file_prefixes = /tmp
            syslog_name = lmtphook-e2e
            myhostname = mx.relay.test
            mydomain = relay.test
            myorigin = relay.test
            mydestination =
            inet_interfaces = loopback-only
            inet_protocols = ipv4
            mynetworks = 127.0.0.0/8
            default_transport = error:no outside delivery in tests
            local_transport = error:no local delivery in tests
            queue_run_delay = 5s
            minimal_backoff_time = 5s
            maximal_backoff_time = 10s

            """ + mainSnippet
        )
        writeFile(
            "\(lab)/conf/master.cf",
            """
            127.0.0.1:\(smtpPort) inet n - n - - smtpd
            pickup    unix  n - n 60 1 pickup
            cleanup   unix  n - n - 0 cleanup
            qmgr      unix  n - n 300 1 qmgr
            tlsmgr    unix  - - n 1000? 1 tlsmgr
            rewrite   unix  - - n - - trivial-rewrite
            bounce    unix  - - n - 0 bounce
            defer     unix  - - n - 0 bounce
            trace     unix  - - n - 0 bounce
            verify    unix  - - n - 1 verify
            flush     unix  n - n 1000? 0 flush
            proxymap  unix  - - n - - proxymap
            smtp      unix  - - n - - smtp
            relay     unix  - - n - - smtp
            showq     unix  n - n - - showq
            error     unix  - - n - - error
            retry     unix  - - n - - error
            discard   unix  - - n - - discard
            lmtp      unix  - - n - - lmtp
            anvil     unix  - - n - 1 anvil
            scache    unix  - - n - 1 scache
            postlog   unix-dgram n - n - 1 postlogd

            """ + masterSnippet
        )
    }

    /// `postfix check` on this configuration (the shipped snippets included).
    func check() -> (status: Int32, output: String) {
        run("/usr/sbin/postfix", ["-c", config, "check"])
    }

    func start() throws {
        let lab = directory.path
        let started = run("/usr/sbin/postfix", ["-c", config, "start"])
        guard started.status == 0 else {
            let log = String(decoding: readFile("\(lab)/maillog") ?? [], as: UTF8.self)
            throw PostfixFailure(
                description: "postfix start failed (status \(started.status)): \(started.output)\n\(log)"
            )
        }
    }

    func stop() {
        run("/usr/sbin/postfix", ["-c", config, "stop"])
        directory.remove()
    }

    /// Counts `status=sent` lines, waiting until `count` appear or the timeout passes.
    func waitForSent(_ count: Int, timeout: Duration) async -> [String] {
        let deadline = ContinuousClock.now + timeout
        var sent: [String] = []
        while ContinuousClock.now < deadline {
            let log = String(decoding: readFile(maillog) ?? [], as: UTF8.self)
            sent = log.split(separator: "\n").map(String.init).filter { $0.contains("status=sent") }
            if sent.count >= count { break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return sent
    }

    struct PostfixFailure: Error, CustomStringConvertible { let description: String }
}

/// An SMTP client session submitting mail to Postfix's smtpd (blocking; use it through `blocking`).
struct SMTPSubmission {
    let connection: LMTPClientConnection

    init(port: Int) throws {
        connection = try LMTPClientConnection(host: "127.0.0.1", port: port, timeoutSeconds: 30)
        try expect(220, "greeting")
        try connection.send("EHLO client.test\r\n")
        try expect(250, "EHLO")
    }

    private func expect(_ code: Int, _ what: String) throws {
        let reply = try connection.readReply()
        guard reply.code == code else { throw LMTPClientConnection.Failure("\(what): \(reply)") }
    }

    /// One transaction; throws unless Postfix queued it (250 after the data).
    func submit(from sender: String, to recipients: [String], message: String) throws {
        try connection.send("MAIL FROM:<\(sender)>\r\n")
        try expect(250, "MAIL")
        for recipient in recipients {
            try connection.send("RCPT TO:<\(recipient)>\r\n")
            try expect(250, "RCPT")
        }
        try connection.send("DATA\r\n")
        try expect(354, "DATA")
        try connection.send(LMTPClientConnection.dotStuff(Array(message.utf8)))
        try expect(250, "end of data")
    }

    func quit() throws {
        try connection.send("QUIT\r\n")
        try expect(221, "QUIT")
    }
}

@Suite("End to end through a real Postfix", .serialized)
struct PostfixEndToEndTests {
    @Test(
        "Postfix delivers 10 messages × 2 recipients through lmtphook; every recipient is status=sent",
        .requires(.root, .program("/usr/sbin/postfix"))
    )
    func tenMessagesTwoRecipients() async throws {
        // Setting up, checking, starting and stopping Postfix run child processes: off the cooperative pool.
        let postfix = try await blocking { try PostfixInstance() }
        do {
            try await deliverTenMessages(through: postfix)
        } catch {
            _ = try? await blocking { postfix.stop() }
            throw error
        }
        try await blocking { postfix.stop() }
    }

    @Test(
        "two lmtphook instances behind one Postfix transport: one is killed mid-stream, every message reaches the receiver",
        .requires(.root, .program("/usr/sbin/postfix"))
    )
    func twoInstancesFailover() async throws {
        // The snippet's ports 2424 and 2425 become free ones.
        let ports = ["a": unusedTCPPort(), "b": unusedTCPPort()]
        let postfix = try await blocking {
            try PostfixInstance(
                main: "main-two-instances.cf",
                replacing: [":2424": ":\(ports["a"]!)", ":2425": ":\(ports["b"]!)"]
            )
        }
        do {
            try await failover(through: postfix, ports: ports)
        } catch {
            _ = try? await blocking { postfix.stop() }
            throw error
        }
        try await blocking { postfix.stop() }
    }

    private func failover(through postfix: PostfixInstance, ports: [String: Int]) async throws {
        let sink = try await RecordingSink.start(responderThreads: 8)
        sink.answer(nil, afterMilliseconds: 300)  // deliveries take a moment, so some are in flight at the kill
        let state = TemporaryDirectory("lmtphook-failover")
        defer { state.remove() }
        let check = try await blocking { postfix.check() }
        #expect(check.status == 0, "postfix check with deploy/postfix/main-two-instances.cf: \(check.output)")
        let metricsPort = unusedTCPPort()
        func instance(_ name: String, metrics: Bool = false) async throws -> ServeProcess {
            try await ServeProcess.start(
                [
                    "--socket", state.file("\(name).sock"), "--listen", "127.0.0.1:\(ports[name]!)", "--spool",
                    state.file("spool-\(name)"),
                    "--webhook", sink.url, "--log-level", "info", "--log-format", "json",
                ] + (metrics ? ["--metrics-listen", "127.0.0.1:\(metricsPort)"] : []),
                socket: state.file("\(name).sock"),
                stderr: state.file("\(name)-\(UUID().uuidString).log")
            )
        }
        var first = try await instance("a", metrics: true)
        let second = try await instance("b")
        defer { if second.isRunning { second.terminate() } }
        try await blocking { try postfix.start() }

        let count = 40
        let port = postfix.smtpPort
        let smtp = try await blocking { try SMTPSubmission(port: port) }
        func submit(_ range: Range<Int>) async throws {
            try await blocking {
                for index in range {
                    try smtp.submit(
                        from: "sender@origin.test",
                        to: ["user\(index)@example.test"],
                        message:
                            "From: sender@origin.test\r\nSubject: failover \(index)\r\nMessage-ID: <failover-\(index)@origin.test>\r\n\r\nmessage \(index)\r\n"
                    )
                }
            }
        }
        try await submit(0..<count / 2)
        // Kill the first instance once it has delivered some and while it has messages in delivery
        // (its own /metrics says so).
        var inDelivery = 0.0
        let deadline = ContinuousClock.now + .seconds(60)
        while (inDelivery < 1 || sink.accepted.count < 5) && ContinuousClock.now < deadline {
            let metrics = try await blocking { CrashTests.scrape(port: metricsPort) } ?? ""
            inDelivery = CrashTests.gauge(metrics, "lmtphook_lmtp_deliveries_active") ?? 0
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(inDelivery >= 1, "the first instance had messages in delivery when it was killed")
        try await first.kill9()
        let receivedAtKill = sink.accepted.count
        try await submit(count / 2..<count)
        try await blocking { try smtp.quit() }

        let sent = await postfix.waitForSent(count, timeout: .seconds(120))
        let log = String(decoding: readFile(postfix.maillog) ?? [], as: UTF8.self)
        #expect(sent.count == count, "every message was delivered (status=sent):\n\(log.suffix(4000))")
        let deferred = log.split(separator: "\n").filter { $0.contains("status=deferred") }.count
        // The first instance comes back on its own spool and drains whatever it had queued.
        first = try await instance("a")
        let spoolA = try Spool(path: state.file("spool-a"))
        let drained = ContinuousClock.now + .seconds(30)
        while !spoolA.ids().isEmpty && ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(100)) }
        let spoolB = try Spool(path: state.file("spool-b"))
        #expect(spoolA.ids().isEmpty && spoolB.ids().isEmpty, "both spools drained")

        // Who delivered what, from each instance's own JSON log: Postfix's relay= cannot tell, it
        // names a reused connection by the first destination of the list.
        func delivered(by name: String) -> Int {
            let logs = ((try? FileManager.default.contentsOfDirectory(atPath: state.path)) ?? []).filter {
                $0.hasPrefix("\(name)-")
            }
            return logs.reduce(0) { total, file in
                total
                    + String(decoding: readFile(state.file(file)) ?? [], as: UTF8.self).components(
                        separatedBy: "\"status\":\"delivered\""
                    ).count - 1
            }
        }
        let viaA = delivered(by: "a")
        let viaB = delivered(by: "b")
        #expect(viaA > 0 && viaB > 0 && viaA + viaB >= count, "both instances delivered: a \(viaA), b \(viaB)")

        var idsBySubject: [String: Set<String>] = [:]
        var requestsBySubject: [String: Int] = [:]
        for request in sink.accepted {
            let document = try json(request.body)
            let subject = document["subject"] as? String ?? ""
            idsBySubject[subject, default: []].insert(document["id"] as? String ?? "")
            requestsBySubject[subject, default: 0] += 1
        }
        let expected = Set((0..<count).map { "failover \($0)" })
        let duplicates = requestsBySubject.values.reduce(0) { $0 + $1 - 1 }
        print(
            "failover test: sent \(count), acknowledged \(sent.count) (a \(viaA), b \(viaB)), deferred \(deferred), received \(idsBySubject.count) distinct in \(sink.accepted.count) requests (\(duplicates) duplicates), \(receivedAtKill) received before the kill"
        )
        #expect(Set(idsBySubject.keys) == expected, "missing: \(expected.subtracting(idsBySubject.keys).sorted())")
        #expect(idsBySubject.values.allSatisfy { $0.count == 1 }, "a duplicate always carries the same webhook id")
        try await first.stop()
        try await second.stop()
        await sink.stop()
    }

    private func deliverTenMessages(through postfix: PostfixInstance) async throws {
        let sink = try await RecordingSink.start()
        let check = try await blocking { postfix.check() }
        #expect(check.status == 0, "postfix check with deploy/postfix/ snippets: \(check.output)")
        // The socket where deploy/postfix/main.cf says (relative to the queue directory), mode 0660,
        // group postfix through the setgid directory: Postfix's lmtp client (user postfix) connects.
        let relay = try await RunningRelay.start(
            webhookURL: sink.url,
            socketMode: 0o660,
            socketPath: postfix.socketPath
        )
        try await blocking { try postfix.start() }  // `postfix start` blocks: off the cooperative pool

        let port = postfix.smtpPort
        try await blocking {
            let smtp = try SMTPSubmission(port: port)
            for index in 0..<10 {
                try smtp.submit(
                    from: "sender\(index)@origin.test",
                    to: ["alpha\(index)@example.test", "beta\(index)@example.test"],
                    message:
                        "From: sender\(index)@origin.test\r\nSubject: e2e \(index)\r\nMessage-ID: <e2e-\(index)@origin.test>\r\n\r\nmessage \(index)\r\n.leading dot\r\n"
                )
            }
            try smtp.quit()
        }

        let sent = await postfix.waitForSent(20, timeout: .seconds(90))
        #expect(sent.count == 20, "maillog:\n\(String(decoding: readFile(postfix.maillog) ?? [], as: UTF8.self))")
        #expect(sent.allSatisfy { $0.contains("relay=") && $0.contains("delivered id=") })
        #expect(
            sent.allSatisfy { $0.contains("postfix/lmtphook") },
            "delivered by the snippet's dedicated lmtphook transport"
        )
        let requests = await sink.waitFor(10)
        #expect(requests.count == 10)
        var subjects: Set<String> = []
        for request in requests {
            let document = try json(request.body)
            subjects.insert(document["subject"] as? String ?? "")
            let envelope = try #require(document["envelope"] as? [String: Any])
            #expect((envelope["rcpt_to"] as? [String])?.count == 2)
            let client = try #require(envelope["client"] as? [String: Any])
            #expect((client["ident"] as? String)?.isEmpty == false, "XFORWARD IDENT (the Postfix queue id) is carried")
            let raw = try #require(Data(base64Encoded: document["raw_base64"] as? String ?? ""))
            #expect(String(decoding: raw, as: UTF8.self).contains("\r\n.leading dot\r\n"))
        }
        #expect(subjects == Set((0..<10).map { "e2e \($0)" }))
        try await relay.stop()
        await sink.stop()
    }
}
