import Delivery
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
        let settings = DeliverySettings(
            retry: RetryPolicy(scheduleMilliseconds: [600_000], jitter: 0),
            breakerThreshold: 3
        )
        let relay = try await RunningRelay.start(webhookURL: sink.url, spool: spoolPath, delivery: settings)
        let body = String(repeating: "x", count: 60) + "\r\n"
        let bigBody = String(repeating: body, count: 500)  // ~31 KB per message
        var codes: [Int] = []
        for index in 0..<20 {
            let replies = try await blocking {
                try LMTPClientConnection(unixPath: relay.socketPath).deliver(
                    from: "a@example.org",
                    to: ["b@example.test"],
                    message: sampleMessage(subject: "m\(index)", body: bigBody)
                )
            }
            codes.append(replies.first?.code ?? 0)
        }
        let spool = try Spool(path: spoolPath)
        // 250 while an entry fits, then 451 for every message (the receiver keeps failing, so no space comes back).
        let firstRefusal = try #require(codes.firstIndex(of: 451), "the 256 KiB spool never filled up: \(codes)")
        #expect(firstRefusal >= 2, "several ~31 KB entries fit in 256 KiB: \(codes)")
        #expect(
            codes[..<firstRefusal].allSatisfy { $0 == 250 } && codes[firstRefusal...].allSatisfy { $0 == 451 },
            "250 until full, then 451: \(codes)"
        )
        #expect(spool.ids().count == firstRefusal, "every 250 has its entry; no 451 left one behind")
        // Refused only for want of space: what is left is less than one entry takes.
        let entryFiles = Self.files(in: spoolPath + "/queue").filter { $0.hasPrefix(spool.ids()[0]) }
        let entryBytes = entryFiles.reduce(0) { $0 + (Self.size(of: spoolPath + "/queue/" + $1) + 4095) / 4096 * 4096 }
        var fileSystem = statvfs()
        #expect(statvfs(mountPoint, &fileSystem) == 0)
        let free = Int(fileSystem.f_bavail) * Int(fileSystem.f_frsize)
        #expect(
            entryBytes > 30_000 && free < entryBytes,
            "\(free) bytes free, an entry takes \(entryBytes) (\(entryFiles))"
        )
        for id in spool.ids() { #expect(throws: Never.self) { _ = try spool.read(id) } }
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: spoolPath + "/tmp").isEmpty,
            "failed writes leave no temporary files"
        )

        // Space returns: the next message is queued again, without a restart.
        try await tmpfs.remount("size=4m")
        let after = try await blocking {
            try LMTPClientConnection(unixPath: relay.socketPath).deliver(
                from: "a@example.org",
                to: ["b@example.test"],
                message: sampleMessage(subject: "after", body: bigBody)
            )
        }
        #expect(after.first?.code == 250)
        try await relay.stop()
        await sink.stop()
    }
}

extension DiskFullTests {
    static func files(in directory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    }

    static func size(of path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
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

    /// umount2(2) directly (no child process: fine in a `defer` on the cooperative pool), lazily:
    /// a daemon still closing its files does not leave the mount behind.
    func unmount() {
        _ = Glibc.umount2(path, Int32(MNT_DETACH))
        directory.remove()
    }
}
