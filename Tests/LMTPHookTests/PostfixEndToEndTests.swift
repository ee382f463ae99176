import Foundation
import LMTPHook
import LMTPHookTestSupport
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
    var socketPath: String { directory.file("spool/lmtphook/lmtp.sock") }

    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/postfix") }
    static let deploy = Binary.packageRoot.appendingPathComponent("deploy/postfix").path

    /// Writes the configuration; ``start()`` starts it.
    init() throws {
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
            return String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "example.com", with: "example.test")
        }
        let mainSnippet = try snippet("main.cf")
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
            let smtp = try LMTPClientConnection(host: "127.0.0.1", port: port, timeoutSeconds: 30)
            func expect(_ code: Int, _ what: String) throws {
                let reply = try smtp.readReply()
                guard reply.code == code else { throw LMTPClientConnection.Failure("\(what): \(reply)") }
            }
            try expect(220, "greeting")
            try smtp.send("EHLO client.test\r\n")
            try expect(250, "EHLO")
            for index in 0..<10 {
                try smtp.send("MAIL FROM:<sender\(index)@origin.test>\r\n")
                try expect(250, "MAIL")
                try smtp.send("RCPT TO:<alpha\(index)@example.test>\r\n")
                try expect(250, "RCPT")
                try smtp.send("RCPT TO:<beta\(index)@example.test>\r\n")
                try expect(250, "RCPT")
                try smtp.send("DATA\r\n")
                try expect(354, "DATA")
                try smtp.send(
                    LMTPClientConnection.dotStuff(
                        Array(
                            "From: sender\(index)@origin.test\r\nSubject: e2e \(index)\r\nMessage-ID: <e2e-\(index)@origin.test>\r\n\r\nmessage \(index)\r\n.leading dot\r\n"
                                .utf8
                        )
                    )
                )
                try expect(250, "end of data")
            }
            try smtp.send("QUIT\r\n")
            try expect(221, "QUIT")
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
