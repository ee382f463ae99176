import Foundation
import MessageData
import Spool
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Entries of messages kept in files (spool format 2): the message is linked into the queue,
/// never copied; every way out of the queue takes it along; recovery finishes what a crash
/// interrupted and never removes a message that has its entry.
@Suite("Spool: messages kept in files")
struct MessageFileEntryTests {
    /// A message file as the LMTP server leaves it (in the spool's incoming/ directory).
    private func incoming(_ spool: String, _ bytes: [UInt8], name: String = "lmtp-incoming-test") throws -> MessageFile
    {
        mkdir(spool + "/incoming", 0o750)
        let path = "\(spool)/incoming/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try MessageFile(opening: path)
    }

    private func inode(_ path: String) -> UInt? {
        var info = stat()
        return stat(path, &info) == 0 ? UInt(info.st_ino) : nil
    }

    private func bigMessage(_ tag: String) -> [UInt8] {
        Array("Subject: \(tag)\r\n\r\n".utf8) + (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    }

    @Test(
        "a message file is linked into the queue (same inode, no copy), read back verified, and removed with its entry"
    )
    func linkedNotCopied() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let bytes = bigMessage("linked")
        let file = try incoming(path, bytes)
        let id = SpoolID.make(milliseconds: 1_000, random: 1)
        try spool.enqueue(metadata(id, size: 0), body: .file(file), state: SpoolState(nextAttemptMilliseconds: 0))
        #expect(inode("\(path)/queue/\(id).eml") == inode(file.path), "a second name for the same file")
        let header = try String(contentsOfFile: "\(path)/queue/\(id).msg", encoding: .utf8)
        #expect(header.hasPrefix("lmtphook-spool 2\n"))
        #expect(header.utf8.count < 2_000, "the entry holds metadata, not the message")
        unlink(file.path)  // the server removes its name when the transaction ends
        let entry = try spool.read(id)
        #expect(entry.body.isFile)
        #expect(entry.metadata.size == bytes.count)
        #expect(try entry.body.contents() == bytes)
        #expect(spool.statistics().liveBytes > bytes.count, "the message counts in the spool's size")
        try spool.complete(id)
        #expect(access("\(path)/queue/\(id).eml", F_OK) != 0)
        #expect(access("\(path)/queue/\(id).msg", F_OK) != 0)
    }

    @Test("one message for two endpoints: two entries, two links to one file; each completes on its own")
    func fanOutShares() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let bytes = bigMessage("shared")
        let file = try incoming(path, bytes)
        let first = SpoolID.make(milliseconds: 1_000, random: 2)
        let second = SpoolID.make(milliseconds: 1_000, random: 3)
        for id in [first, second] {
            try spool.enqueue(metadata(id, size: 0), body: .file(file), state: SpoolState(nextAttemptMilliseconds: 0))
        }
        #expect(inode("\(path)/queue/\(first).eml") == inode("\(path)/queue/\(second).eml"))
        try spool.complete(first)
        #expect(try spool.read(second).body.contents() == bytes)
    }

    @Test("a message file on another file system is copied (tmp, fsync, rename), not linked")
    func otherFileSystemIsCopied() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        var shmInfo = stat()
        var tmpInfo = stat()
        guard stat("/dev/shm", &shmInfo) == 0, stat(path, &tmpInfo) == 0,
            shmInfo.st_dev != tmpInfo.st_dev
        else {
            Issue.record("/dev/shm is not another file system here; the copy path is not exercised")
            return
        }
        let spool = try Spool(path: path)
        let bytes = bigMessage("copied")
        let elsewhere = "/dev/shm/lmtphook-message-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Data(bytes).write(to: URL(fileURLWithPath: elsewhere))
        defer { unlink(elsewhere) }
        let id = SpoolID.make(milliseconds: 1_000, random: 4)
        try spool.enqueue(
            metadata(id, size: 0),
            body: .file(try MessageFile(opening: elsewhere)),
            state: SpoolState(nextAttemptMilliseconds: 0)
        )
        #expect(inode("\(path)/queue/\(id).eml") != inode(elsewhere))
        #expect(try spool.read(id).body.contents() == bytes)
        #expect(try FileManager.default.contentsOfDirectory(atPath: path + "/tmp").isEmpty, "no leftover copy")
    }

    @Test("a changed message file makes its entry damaged: quarantined at recovery with its message, never delivered")
    func damagedMessageIsQuarantined() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let bytes = bigMessage("damaged")
        let id = SpoolID.make(milliseconds: 1_000, random: 5)
        try spool.enqueue(
            metadata(id, size: 0),
            body: .file(try incoming(path, bytes)),
            state: SpoolState(nextAttemptMilliseconds: 0)
        )
        // One byte flipped in place (same size): only the digest can tell.
        let fd = open("\(path)/queue/\(id).eml", O_WRONLY)
        var byte: UInt8 = 0x21
        #expect(pwrite(fd, &byte, 1, 1_000) == 1)
        close(fd)
        #expect { try spool.read(id) } throws: { ($0 as? SpoolError)?.kind == .damaged }
        let report = spool.recover()
        #expect(report.quarantined.count == 1)
        #expect(access("\(path)/quarantine/\(id).msg", F_OK) == 0)
        #expect(access("\(path)/quarantine/\(id).eml", F_OK) == 0, "kept with its message for an operator")
        #expect(access("\(path)/queue/\(id).eml", F_OK) != 0)
    }

    @Test(
        "recovery: a message without an entry is removed unless a live process holds it; one whose entry moved to dead/ follows it"
    )
    func recoveryFinishesInterruptedWork() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let bytes = bigMessage("recovery")
        // A dead letter whose move was interrupted between its entry and its message.
        let dead = SpoolID.make(milliseconds: 1_000, random: 6)
        try spool.enqueue(
            metadata(dead, size: 0),
            body: .file(try incoming(path, bytes, name: "a")),
            state: SpoolState(nextAttemptMilliseconds: 0)
        )
        #expect(rename("\(path)/queue/\(dead).msg", "\(path)/dead/\(dead).msg") == 0)
        #expect(try spool.read(dead).body.contents() == bytes, "found in queue/ meanwhile")
        // A message whose entry was never renamed into place (a crash between the two).
        let orphan = SpoolID.make(milliseconds: 1_000, random: 7)
        _ = try incoming(path, bytes, name: "b")
        #expect(link("\(path)/incoming/b", "\(path)/queue/\(orphan).eml") == 0)
        // The same, but still being queued by a live process (it holds the file locked).
        let held = SpoolID.make(milliseconds: 1_000, random: 8)
        _ = try incoming(path, bytes, name: "c")
        #expect(link("\(path)/incoming/c", "\(path)/queue/\(held).eml") == 0)
        let holder = open("\(path)/queue/\(held).eml", O_RDONLY)
        defer { close(holder) }
        #expect(flock(holder, LOCK_EX | LOCK_NB) == 0)
        _ = spool.recover()
        #expect(access("\(path)/dead/\(dead).eml", F_OK) == 0, "the interrupted move was finished")
        #expect(access("\(path)/queue/\(dead).eml", F_OK) != 0)
        #expect(try spool.read(dead).body.contents() == bytes)
        #expect(access("\(path)/queue/\(orphan).eml", F_OK) != 0, "an orphan is removed")
        #expect(access("\(path)/queue/\(held).eml", F_OK) == 0, "a held one is kept")
        // Dropping a dead letter removes its message too.
        try spool.drop(dead)
        #expect(access("\(path)/dead/\(dead).eml", F_OK) != 0)
    }

    @Test("a dead letter takes its message along, and a replayed dead letter is read from there")
    func deadLetterTakesItsMessage() throws {
        let path = temporarySpoolPath()
        defer { _ = try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(path: path)
        let bytes = bigMessage("dead")
        let id = SpoolID.make(milliseconds: 1_000, random: 9)
        try spool.enqueue(
            metadata(id, size: 0),
            body: .file(try incoming(path, bytes)),
            state: SpoolState(nextAttemptMilliseconds: 0)
        )
        var state = SpoolState(nextAttemptMilliseconds: 0)
        state.deadReason = "HTTP 400"
        try spool.deadLetter(id, state: state)
        #expect(access("\(path)/dead/\(id).eml", F_OK) == 0)
        #expect(access("\(path)/queue/\(id).eml", F_OK) != 0)
        let entry = try spool.read(id)
        #expect(entry.isDead)
        #expect(try entry.body.contents() == bytes)
    }
}
