import Foundation
import LMTPHook
import LMTPHookTestSupport
import NIOConcurrencyHelpers
import Spool
import Testing

/// The durability invariant under crashes: `serve` is killed with SIGKILL again and again under
/// load while the receiver flaps (up, 503, slower than the sync budget); every message that got a
/// 250 must reach the receiver. Kills are synchronised with the daemon, not with a clock: each one
/// waits until the daemon's own `/metrics` shows messages in delivery (received, reply not sent)
/// and the spool holds entries, and the clients then confirm that transactions broke mid-way.
@Suite("Crash safety (kill -9)", .serialized)
struct CrashTests {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// One plain HTTP/1.0 GET of `/metrics` (blocking; call it through `blocking`).
    static func scrape(port: Int) -> String? {
        guard let connection = try? LMTPClientConnection(host: "127.0.0.1", port: port, timeoutSeconds: 2) else {
            return nil
        }
        guard (try? connection.send("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")) != nil else { return nil }
        var lines: [String] = []
        while let line = try? connection.readLine() { lines.append(line) }
        return lines.joined(separator: "\n")
    }

    static func gauge(_ metrics: String, _ name: String) -> Double? {
        metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap {
            Double($0.split(separator: " ").last ?? "")
        }
    }

    /// What the test saw at one kill.
    struct Kill: CustomStringConvertible {
        var deliveriesActive = 0.0, spoolEntries = 0, brokenTransactions = 0
        var landedMidTransaction: Bool { deliveriesActive >= 1 && brokenTransactions >= 1 }
        var description: String {
            "\(Int(deliveriesActive)) messages in delivery, \(spoolEntries) spool entries, \(brokenTransactions) client transactions broken"
        }
    }

    @Test(
        "≥ 300 messages, receiver flapping, 5 × kill -9 while messages are in delivery: every 250 reaches the receiver"
    )
    func killNineUnderLoad() async throws {
        let sink = try await RecordingSink.start(responderThreads: 16)
        let directory = TemporaryDirectory("lmtphook-crash")
        defer { directory.remove() }
        let socket = directory.file("lmtp.sock")
        let spoolPath = directory.file("spool")
        let metricsPort = unusedTCPPort()
        let syncBudget = 300  // ms; the slow receiver answers after 3 × this, so those messages are spooled
        let daemon = try await ServeProcess.start(
            [
                "--socket", socket, "--spool", spoolPath, "--webhook", sink.url, "--sync-budget",
                "\(syncBudget)ms",
                "--retry-schedule", "300ms", "--breaker-cooldown", "500ms", "--webhook-timeout", "2", "--log-level",
                "error", "--metrics-listen",
                "127.0.0.1:\(metricsPort)",
            ],
            socket: socket
        )

        let flapping = Task {
            var phase = 0
            while !Task.isCancelled {
                switch phase % 3 {
                case 0: sink.answer(nil)
                case 1: sink.answer(503)
                default: sink.answer(nil, afterMilliseconds: 3 * syncBudget)
                }
                phase += 1
                try? await Task.sleep(for: .milliseconds(400))
            }
        }

        let minimumMessages = 300
        let killsWanted = 5
        let acked = NIOLockedValueBox<[String]>([])
        let killsDone = NIOLockedValueBox(0)
        /// Transactions that broke after MAIL was sent (the daemon died under them), per daemon generation.
        let broken = NIOLockedValueBox<[Int: Int]>([:])
        let clients = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        try await blocking {
                            var index = 0
                            while acked.withLockedValue({ $0.count }) < minimumMessages
                                || killsDone.withLockedValue({ $0 }) < killsWanted
                            {
                                let subject = "crash-\(worker)-\(index)"
                                index += 1
                                // A message without a 250 is the MTA's to retry: again until acknowledged.
                                var attempts = 0
                                while true {
                                    attempts += 1
                                    guard attempts < 400 else { throw Failure("\(subject) was never acknowledged") }
                                    let generation = killsDone.withLockedValue { $0 }
                                    guard let client = try? LMTPClientConnection(unixPath: socket, timeoutSeconds: 10),
                                        (try? client.readReply())?.code == 220,
                                        (try? client.send("LHLO client.test\r\n")) != nil,
                                        (try? client.readReply())?.code == 250
                                    else {
                                        usleep(20_000)  // the daemon is down or restarting
                                        continue
                                    }
                                    let message = sampleMessage(subject: subject, id: "<\(subject)@t>")
                                    do {
                                        let reply = try client.deliver(
                                            lhlo: nil,
                                            from: "a@example.org",
                                            to: ["r@example.test"],
                                            message: message
                                        ).first
                                        if let reply, reply.code == 250, let text = reply.lines.last,
                                            let range = text.range(of: "id=")
                                        {
                                            acked.withLockedValue { $0.append(String(text[range.upperBound...])) }
                                            break
                                        }
                                    } catch {
                                        broken.withLockedValue { $0[generation, default: 0] += 1 }
                                    }
                                    usleep(20_000)
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }

        var kills: [Kill] = []
        for generation in 0..<killsWanted {
            // Wait for the daemon to hold unacknowledged work: messages in delivery and entries in the spool.
            let spool = try Spool(path: spoolPath)
            var kill = Kill()
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let metrics = try await blocking { Self.scrape(port: metricsPort) } ?? ""
                kill.deliveriesActive = Self.gauge(metrics, "lmtphook_lmtp_deliveries_active") ?? 0
                kill.spoolEntries = spool.ids().count
                if kill.deliveriesActive >= 1 && kill.spoolEntries >= 1 { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            let pid = daemon.pid
            try await daemon.kill9()
            killsDone.withLockedValue { $0 = generation + 1 }
            try await blocking { try daemon.launch() }
            #expect(daemon.pid != pid, "a new process serves after kill \(generation + 1)")
            kills.append(kill)
        }
        try await clients.value
        flapping.cancel()
        sink.answer(nil)
        for (generation, count) in broken.withLockedValue({ $0 }) where generation < kills.count {
            kills[generation].brokenTransactions = count
        }

        let ackedIDs = Set(acked.withLockedValue { $0 })
        #expect(ackedIDs.count >= minimumMessages, "every message was eventually acknowledged")
        let deadline = ContinuousClock.now + .seconds(60)
        var receivedIDs: [String] = []
        while ContinuousClock.now < deadline {
            receivedIDs = sink.accepted.compactMap { try? json($0.body)["id"] as? String }
            let spoolEmpty = try Spool(path: spoolPath).ids().isEmpty
            if ackedIDs.isSubset(of: Set(receivedIDs)) && spoolEmpty { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let lost = ackedIDs.subtracting(receivedIDs)
        let duplicates = receivedIDs.count - Set(receivedIDs).count
        let landed = kills.filter(\.landedMidTransaction).count
        for (index, kill) in kills.enumerated() { print("crash test: kill \(index + 1): \(kill)") }
        print(
            "crash test: \(landed) of \(kills.count) kills landed mid-transaction; acked \(ackedIDs.count), receiver saw \(Set(receivedIDs).count) distinct ids in \(receivedIDs.count) accepted requests (\(duplicates) duplicate deliveries), lost \(lost.count)"
        )
        #expect(landed >= 3, "kills that landed while messages were in delivery: \(kills)")
        #expect(lost.isEmpty, "acknowledged but never delivered: \(lost.sorted().prefix(10))")
        #expect(try Spool(path: spoolPath).ids().isEmpty)
        try await daemon.stop()
        await sink.stop()
    }
}
