import Foundation
import LMTPHook
import LMTPHookTestSupport
import Spool
import Testing

/// A spool on a real, small tmpfs: when it is full the relay answers 451 (never a false 250),
/// keeps serving, and queues again once space returns.
@Suite("Disk full", .serialized)
struct DiskFullTests {
    @Test(.requires(.root, .program("/bin/mount")))
    func fullSpoolAnswers451AndRecovers() async throws {
        let tmpfs = try await Tmpfs.mount(size: "256k")
        defer { tmpfs.unmount() }
        let mountPoint = tmpfs.path
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let spoolPath = mountPoint + "/spool"
        let settings = WebhookDelivery.Settings(retry: RetryPolicy(scheduleMilliseconds: [600_000], jitter: 0), breakerThreshold: 3)
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: settings)
        let body = String(repeating: "x", count: 60) + "\r\n"
        let bigBody = String(repeating: body, count: 500)  // ~31 KB per message
        var codes: [Int] = []
        for index in 0..<20 {
            let replies = try await blocking {
                try LMTPClientConnection(unixPath: relay.socketPath).deliver(from: "a@example.org", to: ["b@example.test"], message: sampleMessage(subject: "m\(index)", body: bigBody))
            }
            codes.append(replies.first?.code ?? 0)
        }
        let spool = try Spool(path: spoolPath)
        let queued = codes.filter { $0 == 250 }.count
        #expect(queued > 0 && queued < 20, "codes: \(codes)")
        #expect(codes.allSatisfy { $0 == 250 || $0 == 451 })
        #expect(spool.ids().count == queued, "every 250 has its entry; no 451 left one behind")
        for id in spool.ids() { #expect(throws: Never.self) { _ = try spool.read(id) } }
        #expect(try FileManager.default.contentsOfDirectory(atPath: spoolPath + "/tmp").isEmpty, "failed writes leave no temporary files")

        // Space returns: the next message is queued again, without a restart.
        try await tmpfs.remount("size=4m")
        let after = try await blocking {
            try LMTPClientConnection(unixPath: relay.socketPath).deliver(from: "a@example.org", to: ["b@example.test"], message: sampleMessage(subject: "after", body: bigBody))
        }
        #expect(after.first?.code == 250)
        try await relay.stop()
        await sink.stop()
    }
}

/// A real tmpfs of a given size in a temp directory (root only), for disk tests.
struct Tmpfs {
    let directory: TemporaryDirectory
    var path: String { directory.file("fs") }

    /// Mounts one (tests that call this declare `.requires(.root, .program("/bin/mount"))`).
    static func mount(size: String) async throws -> Tmpfs {
        let tmpfs = Tmpfs(directory: TemporaryDirectory("lmtphook-tmpfs"))
        try FileManager.default.createDirectory(atPath: tmpfs.path, withIntermediateDirectories: false)
        let mounted = await runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", tmpfs.path])
        try #require(mounted.status == 0, "mount failed: \(mounted.output)")
        return tmpfs
    }

    /// `mount -o remount,OPTIONS`.
    func remount(_ options: String) async throws {
        let result = await runProcess("/bin/mount", ["-o", "remount,\(options)", path])
        try #require(result.status == 0, "\(result.output)")
    }

    /// umount(2) directly (no child process: fine in a `defer` on the cooperative pool).
    func unmount() {
        _ = Glibc.umount(path)
        directory.remove()
    }
}
