import Foundation
import LMTPHook
import LMTPHookTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The durability invariant under power loss, not only kill -9: the spool lives on a file system
/// that keeps every write and every name change in memory until it is fsync'd (file data by fsync
/// of the file, names by fsync of the directory) and throws away everything else at a power cut
/// (Fixtures/powercut_fs.py, FUSE). kill -9 cannot find a missing directory fsync — the kernel
/// still has the name; this can.
@Suite("Power loss (a file system that forgets what was not synced)", .serialized)
struct PowerLossTests {
    /// The FUSE file system process mounted at `mountPoint`, its durable state in `image`.
    final class PowerCutFileSystem: @unchecked Sendable {
        static let script = Binary.packageRoot.appendingPathComponent("Tests/LMTPHookTests/Fixtures/powercut_fs.py")
            .path
        let mountPoint: String
        let image: String
        private var process: Process?

        init(mountPoint: String, image: String) {
            self.mountPoint = mountPoint
            self.image = image
        }

        var isMounted: Bool {
            let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
            return mounts.split(separator: "\n").contains {
                $0.split(separator: " ").dropFirst().first == "\(mountPoint)"
            }
        }

        /// Mounts (again, from the image after a cut) and waits until the mount is there.
        func mount() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = [Self.script, mountPoint, image]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            self.process = process
            let deadline = ContinuousClock.now + .seconds(20)
            while !isMounted {
                guard process.isRunning, ContinuousClock.now < deadline else {
                    throw AckingLoad.Failure(description: "powercut_fs.py did not mount \(mountPoint)")
                }
                usleep(20_000)
            }
        }

        /// The power cut: the file system keeps only what was synced and goes away; the dead
        /// mount is detached.
        func cut() throws {
            guard let process else { return }
            kill(process.processIdentifier, SIGUSR1)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw AckingLoad.Failure(description: "powercut_fs.py exited with \(process.terminationStatus)")
            }
            umount2(mountPoint, Int32(MNT_DETACH))
        }

        /// Unmounts for good.
        func stop() {
            if let process, process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
            if isMounted { umount2(mountPoint, Int32(MNT_DETACH)) }
        }
    }

    /// Spool entries in `queue/` (counted by name; no Spool object holds the mount open).
    static func entries(_ spoolPath: String) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: spoolPath + "/queue")) ?? []).filter {
            $0.hasSuffix(".msg")
        }.count
    }

    @Test(
        "≥ 200 messages, receiver flapping, 4 power cuts while messages are in delivery (unsynced writes and names lost, remount, restart): every 250 reaches the receiver; repeats only with the same webhook id",
        .requires(.root, .fuse)
    )
    func powerCutsUnderLoad() async throws {
        let sink = try await RecordingSink.start(responderThreads: 16)
        let directory = TemporaryDirectory("lmtphook-powercut")
        defer { directory.remove() }
        let mountPoint = directory.file("disk")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        let disk = PowerCutFileSystem(mountPoint: mountPoint, image: directory.file("disk.image"))
        try await blocking { try disk.mount() }
        defer { disk.stop() }
        let socket = directory.file("lmtp.sock")
        let spoolPath = mountPoint + "/spool"
        let metricsPort = unusedTCPPort()
        let syncBudget = 300
        let daemon = try await ServeProcess.start(
            [
                "--socket", socket, "--spool", spoolPath, "--webhook", sink.url,
                "--sync-budget", "\(syncBudget)ms", "--retry-schedule", "300ms", "--breaker-cooldown", "500ms",
                "--webhook-timeout", "2", "--log-level", "error", "--metrics-listen", "127.0.0.1:\(metricsPort)",
            ],
            socket: socket,
            stderr: directory.file("serve.log")
        )
        defer { daemon.terminate() }
        let flapping = flap(sink, slowMilliseconds: 3 * syncBudget)
        let cutsWanted = 4
        // Every 25th message bigger than the spill threshold: kept in a file, linked into the spool.
        let load = AckingLoad(socket: socket, subjectPrefix: "power", bigEvery: 25)
        let clients = Task {
            try await load.run(workers: 6, minimum: 200) { load.generation.withLockedValue { $0 } >= cutsWanted }
        }
        var landed = 0
        for generation in 0..<cutsWanted {
            // At a point where the daemon holds unacknowledged work and spool entries.
            var inDelivery = 0.0
            var entries = 0
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let metrics = try await blocking { CrashTests.scrape(port: metricsPort) } ?? ""
                inDelivery = CrashTests.gauge(metrics, "lmtphook_lmtp_deliveries_active") ?? 0
                entries = Self.entries(spoolPath)
                if inDelivery >= 1 && entries >= 1 { break }
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...30)))
            }
            if inDelivery >= 1 { landed += 1 }
            // Power goes: the disk forgets, the process dies with it.
            daemon.signal(SIGKILL)
            try await blocking { try disk.cut() }
            try await daemon.waitForExit()
            load.generation.withLockedValue { $0 = generation + 1 }
            print("power-loss test: cut \(generation + 1): \(Int(inDelivery)) in delivery, \(entries) entries")
            try await blocking { try disk.mount() }
            try await blocking { try daemon.launch() }
        }
        try await clients.value
        flapping.cancel()
        sink.answer(nil)

        let ackedIDs = load.ackedIDs
        let received = try await load.waitForDelivery(to: sink) { Self.entries(spoolPath) == 0 }
        let lost = ackedIDs.subtracting(received)
        let repeats = received.count - Set(received).count
        let quarantined = (try? FileManager.default.contentsOfDirectory(atPath: spoolPath + "/quarantine")) ?? []
        print(
            "power-loss test: \(cutsWanted) cuts (\(landed) with messages in delivery); acked \(ackedIDs.count), receiver saw \(Set(received).count) distinct ids in \(received.count) accepted requests (\(repeats) repeated, each with its webhook id), lost \(lost.count), quarantined \(quarantined.count)"
        )
        #expect(ackedIDs.count >= 200)
        #expect(landed >= 3, "cuts that landed while messages were in delivery: \(landed)")
        #expect(lost.isEmpty, "acknowledged but never delivered: \(lost.sorted().prefix(10))")
        let serveLog = (try? String(contentsOfFile: directory.file("serve.log"), encoding: .utf8)) ?? ""
        #expect(Self.entries(spoolPath) == 0, "entries left; the daemon said: \(serveLog.suffix(3000))")
        #expect(
            quarantined.isEmpty,
            "a 250 is only given for an entry whose data was synced, so none is found damaged: \(quarantined)"
        )
        let log = (try? String(contentsOfFile: directory.file("serve.log"), encoding: .utf8)) ?? ""
        #expect(!log.contains("journal"), "the journal (SQLite) works on this disk: \(log.prefix(2000))")
        try await daemon.stop()
        await sink.stop()
    }
}
