import Delivery
import Foundation
import LMTPCore
import LMTPHook
import LMTPHookTestSupport
import LMTPServer
import MailCore
import Spool
import Testing

/// Disk faults in the spool: injected I/O errors at every step of a durable write, a real
/// read-only file system, a damaged entry found at retry time. The rule under test: a recipient
/// gets 250 only when its message is fsync'd in the spool (or the webhook took it); every fault
/// gives 451, leaves nothing half-written, and lmtphook recovers without a restart.
@Suite("Disk faults", .serialized)
struct DiskFaultTests {
    static func relay(
        spool: String,
        sink: RecordingSink,
        faults: SpoolFaultInjection? = nil,
        session: LMTPConfiguration? = nil,
        retry: RetryPolicy = RetryPolicy(scheduleMilliseconds: [600_000], jitter: 0),
        log: CapturedLog? = nil,
        journal: String? = nil
    ) async throws -> RunningRelay {
        let directory = TemporaryDirectory()
        var server = LMTPServerConfiguration(
            listeners: [],
            session: session ?? LMTPConfiguration(hostname: "relay.test")
        )
        server.shutdownGracePeriod = .seconds(5)
        let endpoint = WebhookEndpoint(
            url: sink.url,
            connectTimeoutMilliseconds: 1_000,
            totalTimeoutMilliseconds: 5_000
        )
        var configuration = RelayConfiguration(
            server: server,
            webhook: endpoint,
            spoolDirectory: spool,
            delivery: DeliverySettings(retry: retry, breakerThreshold: 1000),
            deliveryThreads: 4
        )
        configuration.spoolFaults = faults
        configuration.journal = journal
        return try await RunningRelay.start(configuration, directory: directory, log: log)
    }

    static func send(_ relay: RunningRelay, subject: String, body: String = "Body line\r\n") async throws -> [Int] {
        try await blocking {
            try LMTPClientConnection(unixPath: relay.socketPath)
                .deliver(
                    from: "a@example.org",
                    to: ["b@example.test", "c@example.test"],
                    message: sampleMessage(subject: subject, body: body)
                )
                .map(\.code)
        }
    }

    static func files(_ path: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] }

    @Test(arguments: [
        (SpoolFaultInjection.Operation.create, ENOSPC), (.write, EIO), (.write, ENOSPC), (.fsync, EIO),
        (.rename, EROFS), (.directorySync, EIO),
    ])
    func injectedWriteFaultGives451ThenRecovers(operation: SpoolFaultInjection.Operation, code: Int32) async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)  // the webhook cannot take it: only the spool can make it a 250
        let directory = TemporaryDirectory()
        let faults = SpoolFaultInjection()
        let log = CapturedLog()
        let relay = try await Self.relay(spool: directory.file("spool"), sink: sink, faults: faults, log: log)
        faults.fail(operation, errno: code)
        #expect(try await Self.send(relay, subject: "during the fault") == [451, 451])
        #expect(faults.hitCount(operation) >= 1, "the fault was on the message's path")
        // The error line names the file (under the spool) and the errno.
        let errors = log.lines(
            .error,
            containing: "cannot queue message",
            directory.file("spool/"),
            String(cString: strerror(code))
        )
        #expect(errors.count == 1, "error lines: \(log.lines.filter { $0.level >= .error })")
        let spool = try Spool(path: directory.file("spool"))
        #expect(spool.ids().isEmpty, "no entry for a message that got 451")
        #expect(Self.files(directory.file("spool/tmp")).isEmpty, "nothing half-written left in tmp/")
        faults.clear()
        #expect(try await Self.send(relay, subject: "after the fault") == [250, 250])
        #expect(spool.ids().count == 1)
        let entry = try spool.read(try #require(spool.ids().first))
        #expect(String(decoding: try entry.body.contents(), as: UTF8.self).contains("Subject: after the fault"))
        try await relay.stop()
        await sink.stop()
        directory.remove()
    }

    @Test("a webhook that answers 2xx needs no spool: faults on the spool do not turn a delivered message into 451")
    func deliveredMessagesDoNotTouchTheSpool() async throws {
        let sink = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        let faults = SpoolFaultInjection()
        let relay = try await Self.relay(spool: directory.file("spool"), sink: sink, faults: faults)
        for operation in SpoolFaultInjection.Operation.allCases { faults.fail(operation, errno: EIO) }
        #expect(try await Self.send(relay, subject: "straight through") == [250, 250])
        #expect(sink.accepted.count == 1)
        try await relay.stop()
        await sink.stop()
        directory.remove()
    }

    @Test(
        "a spool on a file system remounted read-only: 451 (also for a message too big for memory), then 250 once it is writable again",
        .requires(.root, .program("/bin/mount"))
    )
    func readOnlySpool() async throws {
        let tmpfs = try await Tmpfs.mount(size: "8m")
        defer { tmpfs.unmount() }
        let mountPoint = tmpfs.path
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let session = LMTPConfiguration(hostname: "relay.test", spillThreshold: 64 * 1024)
        // The journal (an open SQLite database) lives off the file system: `mount -o remount,ro`
        // refuses while a file on it is open for writing.
        let journal = TemporaryDirectory()
        defer { journal.remove() }
        let relay = try await Self.relay(
            spool: mountPoint + "/spool",
            sink: sink,
            session: session,
            journal: journal.file("journal.sqlite")
        )
        #expect(try await Self.send(relay, subject: "before") == [250, 250])
        try await tmpfs.remount("ro")
        #expect(try await Self.send(relay, subject: "read-only") == [451, 451])
        // 320 KB: spilled to disk while it arrives
        let big = String(repeating: String(repeating: "z", count: 78) + "\r\n", count: 4000)
        #expect(try await Self.send(relay, subject: "big and read-only", body: big) == [451, 451])
        #expect(try Spool(path: mountPoint + "/spool").ids().count == 1)
        try await tmpfs.remount("rw")
        #expect(try await Self.send(relay, subject: "writable again") == [250, 250])
        #expect(try await Self.send(relay, subject: "big and writable", body: big) == [250, 250])
        let spool = try Spool(path: mountPoint + "/spool")
        #expect(spool.ids().count == 3)
        #expect(Self.files(mountPoint + "/spool/incoming").isEmpty)
        try await relay.stop()
        await sink.stop()
    }

    @Test("an entry damaged on disk is moved to quarantine/ at retry time, never sent; the others are delivered")
    func damagedEntryIsQuarantined() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let directory = TemporaryDirectory()
        let log = CapturedLog()
        let relay = try await Self.relay(
            spool: directory.file("spool"),
            sink: sink,
            retry: RetryPolicy(scheduleMilliseconds: [1_500], jitter: 0),
            log: log
        )
        #expect(try await Self.send(relay, subject: "intact") == [250, 250])
        #expect(try await Self.send(relay, subject: "to be damaged") == [250, 250])
        let spool = try Spool(path: directory.file("spool"))
        let ids = spool.ids()
        try #require(ids.count == 2)
        let damaged = try #require(
            ids.first {
                String(decoding: (try? spool.read($0).body.contents()) ?? [], as: UTF8.self).contains("to be damaged")
            }
        )
        let path = directory.file("spool/queue/\(damaged).msg")
        var bytes = try #require(readFile(path))
        let index = try #require(bytes.lastIndex(of: UInt8(ascii: "B")))  // a byte of the message body
        bytes[index] = UInt8(ascii: "X")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        sink.answer(nil)
        let quarantined = { log.lines(.error, containing: "damaged spool entry moved to quarantine/").isEmpty == false }
        let deadline = ContinuousClock.now + .seconds(15)
        // Until both are done (the log line follows the move).
        while ContinuousClock.now < deadline && (spool.ids().count > 0 || sink.accepted.isEmpty || !quarantined()) {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(spool.ids().isEmpty)
        #expect(Self.files(directory.file("spool/quarantine")).contains("\(damaged).msg"))
        #expect(sink.accepted.count == 1)
        #expect(sink.accepted.allSatisfy { !String(decoding: $0.body, as: UTF8.self).contains("to be damaged") })
        #expect(
            log.lines(
                .error,
                containing: "damaged spool entry moved to quarantine/",
                "spool_id=\(damaged)"
            ).count == 1,
            "\(log.lines)"
        )
        try await relay.stop()
        await sink.stop()
        directory.remove()
    }

    @Test(
        "an entry that cannot be read now (EIO) is kept, not quarantined, tried again with a growing backoff (1 s, 2 s), and delivered once it reads again"
    )
    func unreadableEntryIsRetriedWithBackoff() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let directory = TemporaryDirectory()
        let faults = SpoolFaultInjection()
        let log = CapturedLog()
        let retry = 300  // ms: the entry is due again soon after its first attempt
        let relay = try await Self.relay(
            spool: directory.file("spool"),
            sink: sink,
            faults: faults,
            retry: RetryPolicy(scheduleMilliseconds: [Int64(retry)], jitter: 0),
            log: log
        )
        #expect(try await Self.send(relay, subject: "unreadable for now") == [250, 250])
        let spool = try Spool(path: directory.file("spool"))
        let id = try #require(spool.ids().first)
        faults.fail(.read, errno: EIO)
        // The events: the retry worker hits the read fault, once, then again after its backoff.
        var hits: [Int64] = []
        var schedules: [Int64] = []
        let deadline = ContinuousClock.now + .seconds(15)
        while hits.count < 2 && ContinuousClock.now < deadline {
            if faults.hitCount(.read) > hits.count {
                hits.append(UnixTime.now().milliseconds)
                try await Task.sleep(for: .milliseconds(20))  // the schedule is written right after the hit
                schedules.append(try #require(relay.relay.delivery.scheduledAttempt(id), "still scheduled"))
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        try #require(hits.count == 2, "the retry worker read the entry twice")
        #expect((hits[0] + 700...hits[0] + 1_100).contains(schedules[0]), "first backoff: \(schedules[0] - hits[0]) ms")
        #expect(
            (hits[1] + 1_700...hits[1] + 2_100).contains(schedules[1]),
            "second backoff: \(schedules[1] - hits[1]) ms"
        )
        #expect(hits[1] >= schedules[0] - 50, "not taken up again before its backoff ended")
        #expect(spool.ids() == [id], "kept in the queue")
        #expect(Self.files(directory.file("spool/quarantine")).isEmpty, "not quarantined: the bytes may be fine")
        #expect(
            log.lines(
                .error,
                containing: "spool error: entry kept, tried again later",
                "spool_id=\(id)",
                "operation=read",
                "Input/output error"
            ).count == 2
        )
        #expect(sink.requests.count == 1, "only the first (503) attempt reached the receiver")
        // The disk recovers: the entry is delivered.
        faults.clear()
        sink.answer(nil)
        let delivered = ContinuousClock.now + .seconds(15)
        while !spool.ids().isEmpty && ContinuousClock.now < delivered { try await Task.sleep(for: .milliseconds(50)) }
        #expect(spool.ids().isEmpty && sink.accepted.count == 1)
        try await relay.stop()
        await sink.stop()
        directory.remove()
    }
}
