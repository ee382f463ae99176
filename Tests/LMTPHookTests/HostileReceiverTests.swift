import Foundation
import LMTPHook
import LMTPHookTestSupport
import Spool
import Testing
import WebhookClient

/// Receivers that misbehave (Tests/LMTPHookTests/Fixtures/hostile_receiver.py, a real HTTP
/// server in a child process): each gives the right per-recipient reply and spool behaviour in
/// bounded time and memory, and a hanging endpoint does not stop mail to the others.
@Suite("Hostile receivers", .serialized)
struct HostileReceiverTests {
    /// A hostile receiver in a child process.
    final class Receiver: Sendable {
        let process: Process
        let port: Int
        let directory: TemporaryDirectory
        var url: String { "\(scheme)://127.0.0.1:\(port)/hook" }
        let scheme: String

        init(_ mode: String) async throws {
            directory = TemporaryDirectory()
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                "Fixtures/hostile_receiver.py"
            ).path
            var arguments = [script, mode, directory.file("port")]
            if mode == "tls" {
                let made = await runProcess(
                    "/usr/bin/openssl",
                    [
                        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-keyout", directory.file("key.pem"), "-out", directory.file("cert.pem"),
                    ]
                )
                try #require(made.status == 0, "openssl: \(made.output)")
                arguments += [directory.file("cert.pem"), directory.file("key.pem")]
            }
            scheme = mode == "tls" ? "https" : "http"
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3"] + arguments
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var port = 0
            for _ in 0..<200 where port == 0 {
                if let text = readFile(directory.file("port")) {
                    port = Int(String(decoding: text, as: UTF8.self)) ?? 0
                } else {
                    try await Task.sleep(for: .milliseconds(25))
                }
            }
            try #require(port > 0, "the hostile receiver did not start")
            self.port = port
        }

        /// Requests the receiver has read completely.
        var requests: Int {
            readFile(directory.file("port.count")).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
        }

        /// Kills the receiver and waits for it off the cooperative pool.
        func stop() async {
            kill(process.processIdentifier, SIGKILL)
            let process = self.process
            _ = try? await blocking { process.waitUntilExit() }
            directory.remove()
        }
    }

    static func relay(
        endpoints: String,
        routes: String? = nil,
        spool: String,
        threads: Int = 4
    ) async throws -> RunningRelay {
        let yaml = """
            spool: {path: \(spool), retry_schedule: [10m]}
            delivery: {threads: \(threads), sync_budget: 1s}
            endpoints:
            \(endpoints)
            \(routes ?? "")
            """
        return try await RunningRelay.start(ConfigFile.parse(yaml, file: "hostile.yaml") { _ in nil }.relay)
    }

    static func residentMegabytes() -> Int {
        let status = String(decoding: readFile("/proc/self/status") ?? [], as: UTF8.self)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }

    @Test(arguments: [
        // mode, expected reply code, queued in the spool
        // no answer: the sync budget (1 s) runs out, queued; the request ends at its 3 s timeout
        ("silent", 250, true),
        ("drip", 250, true),  // headers a byte at a time: the total timeout cuts it, queued
        ("huge", 250, false),  // 200 with a 1 GiB body: the status counts, the body is cut after 1 MiB
        ("huge-error", 250, true),  // 503 with a 1 GiB body: transient, queued, body cut
        ("redirect", 550, false),  // 302 (to itself): never followed; a 3xx is a permanent answer
        ("reset", 250, true),  // connection reset: transient, queued
        ("tls", 250, true),  // self-signed certificate: refused by verification, queued
    ])
    func misbehavingReceiver(mode: String, code: Int, queued: Bool) async throws {
        let receiver = try await Receiver(mode)
        let directory = TemporaryDirectory()
        let relay = try await Self.relay(
            endpoints: "  - {name: hostile, url: \"\(receiver.url)\", timeout: 3s, connect_timeout: 1s}",
            spool: directory.file("spool")
        )
        let before = Self.residentMegabytes()
        let started = ContinuousClock.now
        let replies = try await blocking {
            try LMTPClientConnection(unixPath: relay.socketPath)
                .deliver(
                    from: "a@example.org",
                    to: ["b@example.test", "c@example.test"],
                    message: sampleMessage(subject: mode)
                )
        }
        let elapsed = ContinuousClock.now - started
        #expect(replies.map(\.code) == [code, code], "\(mode): \(replies)")
        #expect(elapsed < .seconds(5), "\(mode): the reply took \(elapsed)")
        if mode == "silent" || mode == "drip" {
            #expect(elapsed >= .seconds(1), "\(mode): queued when the 1 s sync budget ran out, not before")
        }
        // Every mode but tls read the request in full before misbehaving; tls never got one.
        #expect(
            receiver.requests == (mode == "tls" ? 0 : 1),
            "\(mode): requests the receiver read: \(receiver.requests)"
        )
        let spool = try Spool(path: directory.file("spool"))
        #expect(spool.ids().count == (queued ? 1 : 0), "\(mode)")
        if mode == "huge" || mode == "huge-error" {
            #expect(
                Self.residentMegabytes() - before < 200,
                "\(mode): memory grew by \(Self.residentMegabytes() - before) MB"
            )
        }
        try await relay.stop()
        await receiver.stop()
        directory.remove()
    }

    @Test(
        "an endpoint that never answers holds only its own request slots: mail to another endpoint still goes straight through"
    )
    func hangingEndpointDoesNotStarveOthers() async throws {
        let hanging = try await Receiver("silent")
        let healthy = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        let relay = try await Self.relay(
            endpoints: """
                  - {name: stuck, url: "\(hanging.url)", timeout: 6s}
                  - {name: fine, url: "\(healthy.url)"}
                """,
            routes: """
                routes:
                  - {match: stuck@example.test, endpoint: stuck}
                  - {match: fine@example.test, endpoint: fine}
                """,
            spool: directory.file("spool"),
            threads: 4
        )
        // Eight messages to the hanging endpoint, all at once: each is queued after the 1 s budget
        // while its request keeps hanging (for 6 s); at most 3 of the 4 threads are theirs.
        let stuck = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<8 {
                group.addTask {
                    try await blocking {
                        try LMTPClientConnection(unixPath: relay.socketPath)
                            .deliver(
                                from: "a@example.org",
                                to: ["stuck@example.test"],
                                message: sampleMessage(subject: "stuck \(index)")
                            ).first?.code ?? 0
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stuck == Array(repeating: 250, count: 8))
        let started = ContinuousClock.now
        let fine = try await blocking {
            try LMTPClientConnection(unixPath: relay.socketPath)
                .deliver(from: "a@example.org", to: ["fine@example.test"], message: sampleMessage(subject: "fine"))
                .first
        }
        #expect(fine?.code == 250)
        #expect(
            fine?.lines.last?.contains("delivered id=") == true,
            "delivered, not queued: \(String(describing: fine))"
        )
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(healthy.accepted.count == 1)
        #expect(
            hanging.requests == 3,
            "the hanging endpoint got exactly its 3 slots (each held for its 6 s timeout): \(hanging.requests)"
        )
        try await relay.stop()
        await hanging.stop()
        await healthy.stop()
        directory.remove()
    }

    @Test(
        "access.private_webhooks deny: a name that resolves to loopback is refused at connect time, a literal private address at load time"
    )
    func privateAddressGuard() async throws {
        let sink = try await RecordingSink.start()
        let port = sink.url.split(separator: ":").last.map { String($0.dropLast()) } ?? "0"
        var request = WebhookRequest(url: "http://localhost:\(port)/", body: Array("{}".utf8))
        request.denyPrivateAddresses = true
        let client = WebhookClient(threads: 1)
        let refused = await client.post(request)
        #expect(refused.error?.kind == .refusedAddress, "\(refused.summary)")
        request.denyPrivateAddresses = false
        let allowed = await client.post(request)
        #expect(allowed.status == 200)
        await client.shutdown()
        #expect(sink.requests.count == 1, "only the allowed request reached the receiver")
        #expect(throws: ConfigError.self) {
            try ConfigFile.parse(
                """
                access: {private_webhooks: deny}
                endpoints: [{name: internal, url: "http://169.254.169.254/latest/meta-data"}]
                """,
                file: "guard.yaml"
            ) { _ in nil }
        }
        await sink.stop()
    }

    @Test(arguments: [
        ("127.0.0.1", true), ("10.1.2.3", true), ("172.16.0.1", true), ("172.32.0.1", false), ("192.168.1.1", true),
        ("169.254.169.254", true),
        ("100.64.0.1", true), ("0.0.0.0", true), ("224.0.0.1", true), ("8.8.8.8", false), ("203.0.113.9", true),
        ("198.51.100.1", true), ("192.0.2.1", true), ("1.1.1.1", false), ("::1", true), ("::", true),
        ("fe80::1", true), ("fd00::1", true), ("::ffff:10.0.0.1", true), ("::ffff:8.8.8.8", false),
        ("2606:4700::1111", false), ("localhost", true),
    ])
    func privateAddresses(host: String, isPrivate: Bool) {
        #expect(WebhookAddressGuard.isPrivate(host) == isPrivate)
    }
}
