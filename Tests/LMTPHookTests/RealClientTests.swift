import Foundation
import LMTPHook
import LMTPHookTestSupport
import Testing

/// Other real LMTP clients from Debian's packages against the relay over TCP and the UNIX socket.
@Suite("Real LMTP clients (swaks, msmtp, Python smtplib)", .serialized)
struct RealClientTests {
    @Test(.requires(.program("/usr/bin/swaks")))
    func swaksOverTCPAndUnixSocket() async throws {
        let swaks = "/usr/bin/swaks"
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        let tcp = await runProcess(
            swaks,
            [
                "--protocol", "LMTP", "--server", "127.0.0.1:\(relay.tcpPort)", "--from", "a@example.org",
                "--to", "b@example.test,c@example.test", "--header", "Subject: from swaks", "--body", "hello\n.dot\n",
            ]
        )
        #expect(tcp.status == 0, "\(tcp.output)")
        #expect(tcp.output.contains("250 2.0.0 <b@example.test> delivered id="))
        #expect(tcp.output.contains("250 2.0.0 <c@example.test> delivered id="))
        let unix = await runProcess(
            swaks,
            [
                "--protocol", "LMTP", "--socket", relay.socketPath, "--from", "", "--to", "d@example.test", "--header",
                "Subject: bounce via socket",
            ]
        )
        #expect(unix.status == 0, "\(unix.output)")
        let requests = await sink.waitFor(2)
        let subjects = Set(try requests.map { try json($0.body)["subject"] as? String ?? "" })
        #expect(subjects == ["from swaks", "bounce via socket"])
        try await relay.stop()
        await sink.stop()
    }

    @Test(.requires(.program("/usr/bin/msmtp")))
    func msmtpWithLMTPProtocol() async throws {
        let msmtp = "/usr/bin/msmtp"
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        let messageFile = relay.directory.file("m.eml")
        writeFile(
            messageFile,
            "From: a@example.org\nTo: b@example.test\nSubject: from msmtp\n\nline\n.starts with dot\n"
        )
        let result = await runProcess(
            "/bin/sh",
            [
                "-c",
                "\(msmtp) --host=127.0.0.1 --port=\(relay.tcpPort) --protocol=lmtp --auth=off --tls=off --from=a@example.org b@example.test c@example.test < \(messageFile)",
            ]
        )
        #expect(result.status == 0, "\(result.output)")
        let document = try json(try #require(await sink.waitFor(1).first).body)
        #expect(document["subject"] as? String == "from msmtp")
        let raw = String(
            decoding: Data(base64Encoded: document["raw_base64"] as? String ?? "") ?? Data(),
            as: UTF8.self
        )
        #expect(raw.contains("\r\n.starts with dot\r\n"))
        #expect(
            (document["envelope"] as? [String: Any])?["rcpt_to"] as? [String] == ["b@example.test", "c@example.test"]
        )
        try await relay.stop()
        await sink.stop()
    }

    @Test("Python smtplib.LMTP (lowercase commands) over the UNIX socket", .requires(.program("/usr/bin/python3")))
    func pythonSmtplib() async throws {
        let python = "/usr/bin/python3"
        let sink = try await RecordingSink.start()
        let relay = try await RunningRelay.start(webhookURL: sink.url)
        let script = """
            import smtplib, sys
            c = smtplib.LMTP(sys.argv[1])
            c.sendmail("a@example.org", ["b@example.test"], b"Subject: from smtplib\\r\\n\\r\\nhi\\r\\n")
            c.quit()
            print("OK")
            """
        let result = await runProcess(python, ["-c", script, relay.socketPath])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("OK"))
        #expect(try json(try #require(await sink.waitFor(1).first).body)["subject"] as? String == "from smtplib")
        try await relay.stop()
        await sink.stop()
    }
}
