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

        let flapping = flap(sink, slowMilliseconds: 3 * syncBudget)
        let minimumMessages = 300
        let killsWanted = 5
        // Every 25th message bigger than the spill threshold: kept in a file, linked into the spool.
        let load = AckingLoad(socket: socket, subjectPrefix: "crash", bigEvery: 25)
        let clients = Task {
            try await load.run(workers: 6, minimum: minimumMessages) {
                load.generation.withLockedValue { $0 } >= killsWanted
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
            load.generation.withLockedValue { $0 = generation + 1 }
            try await blocking { try daemon.launch() }
            #expect(daemon.pid != pid, "a new process serves after kill \(generation + 1)")
            kills.append(kill)
        }
        try await clients.value
        flapping.cancel()
        sink.answer(nil)
        for (generation, count) in load.broken.withLockedValue({ $0 }) where generation < kills.count {
            kills[generation].brokenTransactions = count
        }

        let ackedIDs = load.ackedIDs
        #expect(ackedIDs.count >= minimumMessages, "every message was eventually acknowledged")
        let receivedIDs = try await load.waitForDelivery(to: sink) { try Spool(path: spoolPath).ids().isEmpty }
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

    /// `lmtphook spool replay --all`, run again and again, sometimes killed -9 itself.
    final class Replayer: @unchecked Sendable {
        let spoolPath: String
        private let lock = NIOLock()
        private var running: Process?
        private(set) var runs = 0
        private(set) var killed = 0

        init(spoolPath: String) { self.spoolPath = spoolPath }

        var isRunning: Bool { lock.withLock { running?.isRunning ?? false } }

        /// Until cancelled: a replay, every other one killed after up to 300 ms (and each one until a
        /// kill has landed: a replay that finished before its kill does not count).
        func loop() async throws {
            let binary = try Binary.require()
            while !Task.isCancelled {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: binary)
                process.arguments = ["spool", "replay", "--all", "--spool", spoolPath]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                let killThisOne = lock.withLock { () -> Bool in
                    runs += 1
                    running = process
                    return runs % 2 == 0 || killed == 0
                }
                try await blocking {
                    try process.run()
                    if killThisOne {
                        usleep(useconds_t.random(in: 0...300_000))
                        if process.isRunning {
                            kill(process.processIdentifier, SIGKILL)
                            self.lock.withLock { self.killed += 1 }
                        }
                    }
                    process.waitUntilExit()
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test(
        "kill -9 while late attempts run and spool replay runs (itself killed -9 every other time): every 250 reaches the receiver, nothing arrives that was not acknowledged, repeats only with their webhook id"
    )
    func killNineDuringReplaysAndLateAttempts() async throws {
        let sink = try await RecordingSink.start(responderThreads: 16)
        let directory = TemporaryDirectory("lmtphook-crash")
        defer { directory.remove() }
        let socket = directory.file("lmtp.sock")
        let spoolPath = directory.file("spool")
        let metricsPort = unusedTCPPort()
        let syncBudget = 200  // ms; the receiver answers after 2.5 × this: every sync attempt runs late
        let daemon = try await ServeProcess.start(
            [
                "--socket", socket, "--spool", spoolPath, "--webhook", sink.url, "--sync-budget", "\(syncBudget)ms",
                "--retry-schedule", "300ms", "--breaker-cooldown", "500ms", "--webhook-timeout", "3",
                "--log-level", "error", "--metrics-listen", "127.0.0.1:\(metricsPort)",
            ],
            socket: socket
        )
        sink.answer(nil, afterMilliseconds: 5 * syncBudget / 2)
        let flapping = Task {
            var phase = 0
            while !Task.isCancelled {
                // Late successes, late failures (retried), and late successes again.
                sink.answer(phase % 3 == 1 ? 503 : nil, afterMilliseconds: 5 * syncBudget / 2)
                phase += 1
                try? await Task.sleep(for: .milliseconds(700))
            }
        }
        let replayer = Replayer(spoolPath: spoolPath)
        let replays = Task { try await replayer.loop() }
        let killsWanted = 5
        let load = AckingLoad(socket: socket, subjectPrefix: "late")
        let clients = Task {
            try await load.run(workers: 6, minimum: 150) { load.generation.withLockedValue { $0 } >= killsWanted }
        }
        var landed = 0
        for generation in 0..<killsWanted {
            // While entries are queued with their late attempts running and a replay is running.
            let deadline = ContinuousClock.now + .seconds(30)
            var entries = 0
            while ContinuousClock.now < deadline {
                entries =
                    ((try? FileManager.default.contentsOfDirectory(atPath: spoolPath + "/queue")) ?? []).filter {
                        $0.hasSuffix(".msg")
                    }.count
                if entries >= 1 && replayer.isRunning { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            if entries >= 1 && replayer.isRunning { landed += 1 }
            try await daemon.kill9()
            load.generation.withLockedValue { $0 = generation + 1 }
            try await blocking { try daemon.launch() }
        }
        try await clients.value
        replays.cancel()
        _ = try? await replays.value
        flapping.cancel()
        sink.answer(nil)

        let ackedIDs = load.ackedIDs
        let received = try await load.waitForDelivery(to: sink) { try Spool(path: spoolPath).ids().isEmpty }
        let lost = ackedIDs.subtracting(received)
        let unknown = Set(received).subtracting(ackedIDs)
        let repeats = received.count - Set(received).count
        print(
            "crash test (late attempts, replays): \(landed) of \(killsWanted) kills during a replay with entries queued; \(replayer.runs) replays (\(replayer.killed) killed); acked \(ackedIDs.count), receiver saw \(Set(received).count) distinct ids in \(received.count) accepted requests (\(repeats) repeated), lost \(lost.count)"
        )
        #expect(ackedIDs.count >= 150)
        #expect(landed >= 3, "kills during a replay with entries queued: \(landed)")
        #expect(replayer.killed >= 1, "some replays were killed themselves")
        #expect(lost.isEmpty, "acknowledged but never delivered: \(lost.sorted().prefix(10))")
        #expect(unknown.isEmpty, "delivered under an id no 250 gave: \(unknown.sorted().prefix(10))")
        #expect(try Spool(path: spoolPath).ids().isEmpty)
        try await daemon.stop()
        await sink.stop()
    }
}
