import Foundation
import MessageData
import Spool
import Testing

#if canImport(Glibc)
import Glibc
#endif

func temporarySpoolPath() -> String {
    var template = Array("/tmp/lmtphook-spool-XXXXXX".utf8CString)
    _ = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func metadata(_ id: String, size: Int) -> SpoolMetadata {
    SpoolMetadata(
        id: id,
        webhookID: "W\(id)",
        endpoint: "http://127.0.0.1:1/",
        mailFrom: "a@b.test",
        rcptTo: ["c@d.test"],
        lhlo: "mx",
        smtpUTF8: false,
        body: nil,
        client: ["ident": "Q1"],
        receivedAtMilliseconds: 1_000,
        size: size
    )
}

/// Claims an entry nobody should hold. A lock is held by an open file description, and a child
/// process that another test of this process spawns at that moment holds copies of every
/// descriptor until it execs (O_CLOEXEC closes them only then), so a lock released here may stay
/// held for a few milliseconds; this waits out that window (at most a second), nothing longer.
func claimFree(_ spool: Spool, _ id: String) throws -> Spool.Claim {
    let deadline = ContinuousClock.now + .seconds(1)
    while true {
        let result = Result { () throws(SpoolError) -> Spool.Claim in try spool.claim(id) }
        if case .failure(let error) = result, error.kind == .locked, ContinuousClock.now < deadline {
            usleep(1_000)
            continue
        }
        return try result.get()
    }
}

@Suite("Spool")
struct SpoolTests {
    @Test func enqueueReadCompleteRoundTrip() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let id = SpoolID.make(milliseconds: 1_000, random: 7)
        let raw = Array("Subject: x\r\n\r\n\u{0}binary\u{FF}\r\n".utf8)
        try spool.enqueue(metadata(id, size: raw.count), raw: raw, state: SpoolState(nextAttemptMilliseconds: 5_000))
        #expect(spool.ids() == [id])
        let entry = try spool.read(id)
        #expect(try entry.body.contents() == raw)
        var expected = metadata(id, size: raw.count)
        expected.initialState = SpoolState(nextAttemptMilliseconds: 5_000)
        #expect(entry.metadata == expected)
        #expect(
            spool.state(id)?.nextAttemptMilliseconds == 5_000,
            "the state travels in the entry until the first update"
        )
        #expect(entry.state.nextAttemptMilliseconds == 5_000)
        #expect(!entry.isDead)
        try spool.complete(id)
        #expect(spool.ids().isEmpty)
        #expect(throws: SpoolError.self) { try spool.read(id) }
    }

    @Test("recovery removes tmp leftovers and quarantines damaged entries without deleting them")
    func recovery() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let good = SpoolID.make(milliseconds: 1, random: 1)
        let bad = SpoolID.make(milliseconds: 2, random: 2)
        try spool.enqueue(
            metadata(good, size: 3),
            raw: Array("abc".utf8),
            state: SpoolState(nextAttemptMilliseconds: 0)
        )
        try spool.enqueue(metadata(bad, size: 3), raw: Array("xyz".utf8), state: SpoolState(nextAttemptMilliseconds: 0))
        // Damage one entry (a torn write) and leave a half-written file in tmp/.
        let badPath = "\(path)/queue/\(bad).msg"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: badPath))
        try bytes.prefix(bytes.count - 10).write(to: URL(fileURLWithPath: badPath))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: "\(path)/tmp/ZZZZ.msg"))

        let report = try Spool(path: path).recover()
        #expect(report.removedTemporaryFiles == 1)
        #expect(report.entries == 1)
        #expect(report.quarantined.count == 1 && report.quarantined[0].hasPrefix(bad))
        #expect(spool.ids() == [good])
        #expect(FileManager.default.fileExists(atPath: "\(path)/quarantine/\(bad).msg"))
    }

    @Test(
        "an entry of a newer format (its header line) is neither read nor quarantined: it stays where it is; a new spool records its format"
    )
    func newerEntryStaysInPlace() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        #expect(
            FileContents.read(path: "\(path)/FORMAT").map { String(decoding: $0, as: UTF8.self) }
                == "lmtphook spool format \(Spool.format)\n"
        )
        let id = SpoolID.make(milliseconds: 3, random: 3)
        try spool.enqueue(metadata(id, size: 3), raw: Array("abc".utf8), state: SpoolState(nextAttemptMilliseconds: 0))
        let entryPath = "\(path)/queue/\(id).msg"
        var bytes = try #require(FileContents.read(path: entryPath))
        bytes.replaceSubrange(0..<"lmtphook-spool 1".utf8.count, with: Array("lmtphook-spool \(Spool.format + 1)".utf8))
        try Data(bytes).write(to: URL(fileURLWithPath: entryPath))
        let report = spool.recover()
        #expect(report.quarantined.isEmpty)
        #expect(report.unreadable.count == 1 && report.unreadable[0].contains("written by a newer lmtphook"))
        #expect(spool.ids() == [id])
        #expect(throws: SpoolError.self) { try spool.read(id) }
        do { _ = try spool.read(id) } catch { #expect(error.kind == .newerFormat) }
    }

    @Test func checksumMismatchIsDetected() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let id = SpoolID.make(milliseconds: 3, random: 3)
        try spool.enqueue(
            metadata(id, size: 5),
            raw: Array("hello".utf8),
            state: SpoolState(nextAttemptMilliseconds: 0)
        )
        let file = "\(path)/queue/\(id).msg"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        let index = bytes.firstRange(of: Data("hello".utf8))!.lowerBound
        bytes[index] = UInt8(ascii: "j")
        try bytes.write(to: URL(fileURLWithPath: file))
        #expect { try spool.read(id) } throws: { ($0 as? SpoolError)?.kind == .damaged }
    }

    @Test("claims exclude each other, also across file descriptors (processes)")
    func claims() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let id = SpoolID.make(milliseconds: 4, random: 4)
        try spool.enqueue(metadata(id, size: 1), raw: [0x41], state: SpoolState(nextAttemptMilliseconds: 0))
        var first: Spool.Claim? = try claimFree(spool, id)
        #expect { try spool.claim(id) } throws: { ($0 as? SpoolError)?.kind == .locked }
        first = nil
        _ = first
        #expect(throws: Never.self) { _ = try claimFree(spool, id) }
        try spool.complete(id)
        #expect { try spool.claim(id) } throws: { ($0 as? SpoolError)?.kind == .notFound }
    }

    @Test func deadLetterAndDrop() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let id = SpoolID.make(milliseconds: 5, random: 5)
        try spool.enqueue(metadata(id, size: 1), raw: [0x41], state: SpoolState(nextAttemptMilliseconds: 0))
        var state = SpoolState(nextAttemptMilliseconds: 0)
        state.append(.init(atMilliseconds: 1, status: 503, error: nil, snippet: "down", kind: "retry"))
        state.deadReason = "too old"
        try spool.deadLetter(id, state: state)
        #expect(spool.ids().isEmpty)
        #expect(spool.ids(dead: true) == [id])
        let dead = try spool.read(id)
        #expect(dead.isDead && dead.state.deadReason == "too old" && dead.state.attempts.count == 1)
        try spool.drop(id)
        #expect(spool.ids().isEmpty && spool.ids(dead: true).isEmpty)
        #expect { try spool.drop(id) } throws: { ($0 as? SpoolError)?.kind == .notFound }
        #expect { try spool.drop("../../etc/passwd") } throws: { ($0 as? SpoolError)?.kind == .notFound }
    }

    @Test("200 concurrent writers: every entry is durable and readable (group commit)")
    func concurrentEnqueue() async throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let ids = (0..<200).map { SpoolID.make(milliseconds: Int64($0), random: UInt32($0)) }
        DispatchQueue.concurrentPerform(iterations: ids.count) { index in
            let raw = Array("message \(index)".utf8)
            try! spool.enqueue(
                metadata(ids[index], size: raw.count),
                raw: raw,
                state: SpoolState(nextAttemptMilliseconds: 0)
            )
        }
        #expect(spool.ids() == ids.sorted())
        for (index, id) in ids.enumerated() {
            #expect(try spool.read(id).body.contents() == Array("message \(index)".utf8))
        }
    }

    @Test func statistics() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        try spool.enqueue(
            metadata(SpoolID.make(milliseconds: 1, random: 1), size: 10),
            raw: [UInt8](repeating: 1, count: 10),
            state: SpoolState(nextAttemptMilliseconds: 0)
        )
        let stats = spool.statistics()
        #expect(stats.live == 1 && stats.dead == 0 && stats.liveBytes > 10)
    }
}

@Suite("Retry policy")
struct RetryPolicyTests {
    let policy = RetryPolicy()

    @Test(
        "schedule 5 s, 5 min, 30 min, 2 h, … 24 h (repeating), ±20 % jitter",
        arguments: [
            (1, 5_000 as Int64), (2, 300_000), (3, 1_800_000), (4, 7_200_000), (9, 86_400_000), (15, 86_400_000),
        ]
    )
    func schedule(_ attempts: Int, _ delay: Int64) {
        for random in [0.0, 0.5, 0.999] {
            guard
                case .retry(let at) = policy.afterTransientFailure(
                    attempts: attempts,
                    createdAtMilliseconds: 0,
                    nowMilliseconds: 0,
                    retryAfterSeconds: nil,
                    random: random
                )
            else {
                Issue.record("expected a retry")
                return
            }
            let expected = Double(delay) * (1 + 0.2 * (2 * random - 1))
            #expect(abs(Double(at) - expected) <= 1)
            #expect(Double(at) >= Double(delay) * 0.8 && Double(at) <= Double(delay) * 1.2)
        }
    }

    @Test func retryAfterIsHonouredAndClamped() {
        #expect(
            policy.afterTransientFailure(
                attempts: 1,
                createdAtMilliseconds: 0,
                nowMilliseconds: 0,
                retryAfterSeconds: 120,
                random: 0.5
            ) == .retry(atMilliseconds: 120_000)
        )
        #expect(
            policy.afterTransientFailure(
                attempts: 1,
                createdAtMilliseconds: 0,
                nowMilliseconds: 0,
                retryAfterSeconds: 10_000_000,
                random: 0.5
            ) == .retry(atMilliseconds: 86_400_000)
        )
        // A shorter Retry-After does not make retries more aggressive than the schedule.
        #expect(
            policy.afterTransientFailure(
                attempts: 2,
                createdAtMilliseconds: 0,
                nowMilliseconds: 0,
                retryAfterSeconds: 1,
                random: 0.5
            ) == .retry(atMilliseconds: 300_000)
        )
    }

    @Test func maxAgeDeadLetters() {
        let decision = policy.afterTransientFailure(
            attempts: 20,
            createdAtMilliseconds: 0,
            nowMilliseconds: 5 * 86_400_000 - 1_000,
            retryAfterSeconds: nil,
            random: 0.5
        )
        guard case .deadLetter(let reason) = decision else {
            Issue.record("expected dead letter, got \(decision)")
            return
        }
        #expect(reason.contains("20 attempt"))
    }

    @Test func parsesDurations() {
        #expect(RetryPolicy.parseDurations("5s,5m,30m,2h,1d") == [5_000, 300_000, 1_800_000, 7_200_000, 86_400_000])
        #expect(RetryPolicy.parseDuration("250ms") == 250)
        #expect(RetryPolicy.parseDuration("1.5s") == 1_500)
        #expect(RetryPolicy.parseDurations("5x") == nil)
        #expect(RetryPolicy.parseDurations("") == nil)
    }
}

@Suite("Spool state history")
struct SpoolStateHistoryTests {
    @Test("the history keeps the first and the latest attempts, and counts them all")
    func boundedHistory() throws {
        var state = SpoolState(nextAttemptMilliseconds: 0)
        for index in 0..<1_000 {
            state.append(
                .init(
                    atMilliseconds: Int64(index),
                    status: 503,
                    error: nil,
                    snippet: nil,
                    kind: index == 0 ? "sync" : "retry"
                )
            )
        }
        #expect(state.attemptCount == 1_000)
        #expect(state.attempts.count == SpoolState.historyLimit)
        #expect(state.attempts.first?.kind == "sync" && state.attempts.last?.atMilliseconds == 999)
        let decoded = try JSONDecoder().decode(SpoolState.self, from: JSONEncoder().encode(state))
        #expect(decoded == state && decoded.attemptCount == 1_000)
        // State files written before the cap still decode.
        let old = try JSONDecoder().decode(
            SpoolState.self,
            from: Data(#"{"attempts":[],"nextAttemptMilliseconds":5}"#.utf8)
        )
        #expect(old.attemptCount == 0 && old.nextAttemptMilliseconds == 5)
    }
}

@Suite("Spool durability edges")
struct SpoolDurabilityTests {
    private func spoolWithEntry(_ faults: SpoolFaultInjection) throws -> (Spool, String, String) {
        let path = temporarySpoolPath()
        let spool = try Spool(path: path, faults: faults)
        let id = SpoolID.make(milliseconds: 9, random: 9)
        try spool.enqueue(metadata(id, size: 1), raw: [0x41], state: SpoolState(nextAttemptMilliseconds: 0))
        return (spool, id, path)
    }

    /// Each way an entry leaves the queue syncs the directories whose names changed: after a
    /// power loss a completed entry must not come back, a dead letter must not vanish.
    @Test(
        "complete, dead-letter, quarantine and drop sync the directory (and fail when that sync fails)",
        arguments: ["complete", "dead-letter", "quarantine", "drop"]
    )
    func leavingTheQueueIsDurable(_ operation: String) throws {
        let faults = SpoolFaultInjection()
        let (spool, id, path) = try spoolWithEntry(faults)
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let act: () throws -> Void = {
            switch operation {
            case "complete": try spool.complete(id)
            case "dead-letter": try spool.deadLetter(id, state: SpoolState(nextAttemptMilliseconds: 0))
            case "quarantine": try spool.quarantine(id)
            default: try spool.drop(id)
            }
        }
        faults.fail(.directorySync, errno: EIO)
        #expect { try act() } throws: { "\($0)".contains("fsync of") && "\($0)".contains("Input/output error") }
        #expect(faults.hitCount(.directorySync) >= 1)
    }

    @Test("state writes go through the fault layer: ENOSPC on a state file is an error, not silence")
    func stateWritesFail() throws {
        let faults = SpoolFaultInjection()
        let (spool, id, path) = try spoolWithEntry(faults)
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        for operation in [SpoolFaultInjection.Operation.create, .write, .rename] {
            faults.clear()
            faults.fail(operation, errno: ENOSPC)
            #expect(throws: SpoolError.self, "\(operation)") {
                try spool.writeState(id, SpoolState(nextAttemptMilliseconds: 5))
            }
        }
        faults.clear()
        try spool.writeState(id, SpoolState(nextAttemptMilliseconds: 5))
        #expect(spool.state(id)?.nextAttemptMilliseconds == 5)
        #expect(try FileManager.default.contentsOfDirectory(atPath: path + "/tmp").isEmpty, "no temp file left")
    }

    @Test("a claim that cannot open the entry (EMFILE, EACCES) is an error, never 'not found'")
    func claimErrorsAreNotNotFound() throws {
        let faults = SpoolFaultInjection()
        let (spool, id, path) = try spoolWithEntry(faults)
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        for code in [EMFILE, EACCES] {
            faults.fail(.open, errno: code)
            #expect { try spool.claim(id) } throws: {
                ($0 as? SpoolError)?.kind == .unreadable && "\($0)".contains(String(cString: strerror(code)))
            }
        }
        faults.clear()
        #expect(throws: Never.self) { _ = try claimFree(spool, id) }
    }

    @Test("an entry enqueued claimed cannot be claimed by anyone else until the claim is released")
    func enqueueClaimed() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let other = try Spool(path: path)  // a second process's view (its own descriptors)
        let id = SpoolID.make(milliseconds: 10, random: 10)
        var claim: Spool.Claim? = try spool.enqueueClaimed(
            metadata(id, size: 1),
            body: .bytes([0x42]),
            state: SpoolState(nextAttemptMilliseconds: 0)
        )
        #expect(other.ids() == [id], "the entry is in the queue")
        #expect { try other.claim(id) } throws: { ($0 as? SpoolError)?.kind == .locked }
        #expect { try spool.claim(id) } throws: { ($0 as? SpoolError)?.kind == .locked }
        claim = nil
        _ = claim
        #expect(throws: Never.self) { _ = try claimFree(other, id) }
    }

    @Test("recovery removes abandoned temp files but not one another live process is writing")
    func recoveryKeepsLockedTemporaryFiles() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let abandoned = path + "/tmp/0000000001AAAAAA.msg"
        let busy = path + "/tmp/0000000002AAAAAA.msg"
        for file in [abandoned, busy] {
            #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        }
        let holder = open(busy, O_RDONLY)
        defer { close(holder) }
        #expect(flock(holder, LOCK_EX) == 0)
        let report = spool.recover()
        #expect(report.removedTemporaryFiles == 1)
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        #expect(FileManager.default.fileExists(atPath: busy), "a locked temp file belongs to a live writer")
    }

    @Test("recovery keeps an entry it cannot read right now in place (unreadable is not damaged)")
    func recoveryKeepsUnreadableEntries() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let id = SpoolID.make(milliseconds: 11, random: 11)
        try spool.enqueue(metadata(id, size: 1), raw: [0x43], state: SpoolState(nextAttemptMilliseconds: 0))
        // A directory where the entry file should be: read(2) fails with EISDIR, an I/O error, not damage.
        let file = path + "/queue/\(id).msg"
        let moved = path + "/entry.bak"
        #expect(rename(file, moved) == 0 && mkdir(file, 0o700) == 0)
        let report = spool.recover()
        #expect(report.quarantined.isEmpty && report.unreadable.count == 1, "\(report)")
        #expect(FileManager.default.fileExists(atPath: file))
    }
}
