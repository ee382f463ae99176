import Crypto
import Foundation
import MessageData

#if canImport(Glibc)
import Glibc
#endif

/// The durable on-disk queue: one directory tree, one entry per message.
///
/// ```
/// DIR/tmp/          entries being written (removed at start-up)
/// DIR/queue/ID.msg  a message held in memory: "lmtphook-spool 1", metadata JSON line, the raw
///                   message, "end <sha256>" trailer (one file, one fsync)
/// DIR/queue/ID.msg  a message held in a file: "lmtphook-spool 2", metadata JSON line,
///                   "end <sha256 of the message>"; the message itself is
/// DIR/queue/ID.eml  the raw message: a hard link to the file it arrived in (no copy), shared
///                   by the entries of one message's endpoints
/// DIR/queue/ID.state   delivery state (attempts, next attempt, history), replaced atomically
/// DIR/dead/         dead letters (both files), kept with their history
/// DIR/quarantine/   damaged entries moved aside at start-up, never deleted
/// DIR/FORMAT        "lmtphook spool format N": the layout (absent in spools of 0.1.0: format 1)
/// ```
///
/// An entry is written tmp → fsync → rename → fsync(directory) (the directory sync is shared by
/// concurrent writers, see `GroupCommit`; a message file is fsync'd and linked before), so once
/// ``enqueue(_:body:state:)`` returns it survives a
/// crash. fsync errors are never retried on the same file: the entry is removed and the call fails.
/// All methods block: call them from a thread pool.
package final class Spool: Sendable {
    package let path: String
    /// One shared fsync per directory whose names change: queue/ (enqueue, complete), dead/,
    /// quarantine/. Opened once, closed with the spool.
    private let queueSync: DirectorySync
    private let deadSync: DirectorySync
    private let quarantineSync: DirectorySync
    /// The fault-injection hook (tests only; `nil` in production).
    package let faults: SpoolFaultInjection?

    static let magic = "lmtphook-spool 1"
    /// The header of an entry whose message is in its own `.eml` file.
    static let fileMagic = "lmtphook-spool 2"

    /// The spool layout this binary writes; it reads every format up to this one. A spool (its
    /// `FORMAT` file) or an entry (its header line) of a later format is refused, never half-read.
    /// Format 2 added entries whose message is a separate file (`ID.eml`).
    package static let format = 2
    static let formatFilePrefix = "lmtphook spool format "

    /// Opens (creating if needed) the spool at `path`. `faults` injects I/O errors (tests).
    /// Throws ``SpoolError/Kind/newerFormat`` for a spool a newer lmtphook wrote, before touching
    /// anything in it.
    package init(path: String, faults: SpoolFaultInjection? = nil) throws(SpoolError) {
        self.path = path
        self.faults = faults
        let found = try Self.readFormat(path)
        var created: [String] = []
        for directory in ["", "/tmp", "/queue", "/dead", "/quarantine"] {
            if mkdir(path + directory, 0o750) == 0 {
                created.append(path + directory)
            } else if errno != EEXIST {
                throw SpoolError(.unavailable, "cannot create \(path + directory): \(Self.lastError())")
            }
        }
        // A new directory's name is durable only once its parent is synced: without this, a
        // power cut soon after the first start could take the queue directory with every entry in it.
        for parent in Set(created.map(Self.parent(of:))) {
            try DirectorySync(path: parent, faults: faults).commit()
        }
        queueSync = try DirectorySync(path: path + "/queue", faults: faults)
        deadSync = try DirectorySync(path: path + "/dead", faults: faults)
        quarantineSync = try DirectorySync(path: path + "/quarantine", faults: faults)
        if found == nil { Self.writeFormat(path) }
    }

    /// The format in `DIR/FORMAT` (`nil`: no file — a new spool, or one of 0.1.0, format 1).
    static func readFormat(_ path: String) throws(SpoolError) -> Int? {
        guard let bytes = readFile("\(path)/FORMAT") else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw SpoolError(.unavailable, "cannot read \(path)/FORMAT: \(lastError())")
        }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix(formatFilePrefix), let number = Int(text.dropFirst(formatFilePrefix.count)), number > 0
        else {
            throw SpoolError(
                .unavailable,
                "\(path)/FORMAT does not name a spool format (\"\(text.prefix(60))\"); it is not an lmtphook spool, or it is damaged"
            )
        }
        guard number <= format else {
            throw SpoolError(
                .newerFormat,
                "\(path) is a spool of format \(number), written by a newer lmtphook; this one reads formats up to \(format). Nothing in it was touched: run the newer lmtphook on it (see docs/operations.md, Upgrades)"
            )
        }
        return number
    }

    /// Records this binary's format in a new (or 0.1.0) spool: tmp, fsync, rename, directory
    /// fsync. Best effort: a spool on a read-only file system stays without one (format 1).
    static func writeFormat(_ path: String) {
        let temporary = "\(path)/tmp/FORMAT.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do {
            try writeDurably(Array("\(formatFilePrefix)\(format)\n".utf8), to: temporary)
        } catch {
            return
        }
        guard rename(temporary, "\(path)/FORMAT") == 0 else {
            unlink(temporary)
            return
        }
        try? DirectorySync(path: path, faults: nil).commit()
    }

    static func lastError() -> String { String(cString: strerror(errno)) }

    /// The directory that holds `path` (`.` for a bare name).
    static func parent(of path: String) -> String {
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    private var queue: String { path + "/queue" }

    // MARK: - Writing

    /// Writes an entry durably. When this returns, the entry survives a crash.
    package func enqueue(_ metadata: SpoolMetadata, raw: [UInt8], state: SpoolState) throws(SpoolError) {
        _ = try write(metadata, body: .bytes(raw), state: state, claimed: false)
    }

    /// Writes an entry durably; a message in a file is linked into the spool, not copied.
    package func enqueue(_ metadata: SpoolMetadata, body: MessageBody, state: SpoolState) throws(SpoolError) {
        _ = try write(metadata, body: body, state: state, claimed: false)
    }

    /// Writes an entry durably and returns it already claimed: the lock is taken on the file
    /// before it is renamed into the queue, so no other process or thread can claim it first
    /// (an attempt that outlives the sync budget keeps delivering it, nobody else).
    package func enqueueClaimed(
        _ metadata: SpoolMetadata,
        body: MessageBody,
        state: SpoolState
    ) throws(SpoolError)
        -> Claim
    {
        try write(metadata, body: body, state: state, claimed: true)!
    }

    private func write(
        _ metadata: SpoolMetadata,
        body: MessageBody,
        state: SpoolState,
        claimed: Bool
    ) throws(SpoolError)
        -> Claim?
    {
        guard SpoolID.isValid(metadata.id) else { throw SpoolError(.write, "invalid spool id \(metadata.id)") }
        var metadata = metadata
        metadata.initialState = state  // one file per entry: no separate state file until the first update
        metadata.size = body.count
        let bytes: [UInt8]
        let messageFile = "\(queue)/\(metadata.id).eml"
        var linked = false
        switch body {
        case .bytes(let raw):
            bytes = try Self.encodeEntry(metadata, raw: raw)
        case .file(let file):
            // The message file first (its data synced, then its name in queue/, synced with the
            // entry's below); the entry only names it, with its digest.
            do throws(SpoolError) {
                let digest = try placeMessage(file, at: messageFile, id: metadata.id)
                linked = true
                bytes = try Self.encodeEntry(metadata, messageDigest: digest)
            } catch {
                if linked { unlink(messageFile) }
                throw error
            }
        }
        let temporary = "\(path)/tmp/\(metadata.id).msg"
        let final = "\(queue)/\(metadata.id).msg"
        var claim: Claim? = nil
        do throws(SpoolError) {
            let fd = try Self.writeDurably(bytes, to: temporary, keepOpen: true, faults: faults)!
            claim = Claim(fd: fd)  // flock'd by writeDurably: held across the rename
            if let code = faults?.check(.rename) {
                throw SpoolError(.write, "rename to \(final) failed: \(String(cString: strerror(code))) (injected)")
            }
            guard rename(temporary, final) == 0 else {
                throw SpoolError(.write, "rename to \(final) failed: \(Self.lastError())")
            }
            try queueSync.commit()
        } catch {
            unlink(temporary)
            unlink(final)
            unlink("\(queue)/\(metadata.id).state")
            if linked { unlink(messageFile) }
            throw error
        }
        return claimed ? claim : nil
    }

    /// Puts a message file at `target` in the queue: fsync of its data, then a hard link (a copy
    /// through `tmp/` when the file is on another file system or one without hard links). Returns the message's SHA-256.
    private func placeMessage(_ file: MessageFile, at target: String, id: String) throws(SpoolError) -> String {
        if let code = faults?.check(.fsync) {
            throw SpoolError(.write, "fsync of \(file.path) failed: \(String(cString: strerror(code))) (injected)")
        }
        var hasher = SHA256()
        do {
            try file.sync()
            try file.forEachChunk { hasher.update(bufferPointer: $0) }
        } catch {
            throw SpoolError(.write, "\(error)")
        }
        if let code = faults?.check(.create) {
            throw SpoolError(.write, "cannot link \(target): \(String(cString: strerror(code))) (injected)")
        }
        do throws(MessageFileError) {
            try file.link(to: target)
        } catch  where error.cannotLink {
            try copyMessage(file, to: target, id: id)
        } catch {
            throw SpoolError(.write, error.description)
        }
        return Self.hex(hasher.finalize())
    }

    /// Copies a message file into the queue (tmp, fsync, rename) when it cannot be linked.
    private func copyMessage(_ file: MessageFile, to target: String, id: String) throws(SpoolError) {
        let temporary = "\(path)/tmp/\(id).eml"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SpoolError(.write, "cannot create \(temporary): \(Self.lastError())") }
        var failure: String? = nil
        if flock(fd, LOCK_EX | LOCK_NB) != 0 { failure = "cannot lock \(temporary): \(Self.lastError())" }
        do {
            try file.forEachChunk { chunk in
                guard failure == nil else { return }
                var offset = 0
                while offset < chunk.count {
                    let written = Glibc.write(fd, chunk.baseAddress! + offset, chunk.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        failure = "write to \(temporary) failed: \(Self.lastError())"
                        return
                    }
                    offset += written
                }
            }
        } catch {
            failure = failure ?? "\(error)"
        }
        if failure == nil && fsync(fd) != 0 { failure = "fsync of \(temporary) failed: \(Self.lastError())" }
        close(fd)
        if failure == nil && rename(temporary, target) != 0 {
            failure = "rename to \(target) failed: \(Self.lastError())"
        }
        if let failure {
            unlink(temporary)
            throw SpoolError(.write, failure)
        }
    }

    /// write + fsync + close of a new file (O_EXCL); any failure removes it. The file is flock'd
    /// from creation, so start-up recovery of another process never removes it while it is
    /// written; with `keepOpen` the locked descriptor is returned instead of closed.
    @discardableResult
    static func writeDurably(
        _ bytes: [UInt8],
        to path: String,
        sync: Bool = true,
        keepOpen: Bool = false,
        faults: SpoolFaultInjection? = nil
    ) throws(SpoolError) -> Int32? {
        if let code = faults?.check(.create) {
            throw SpoolError(.write, "cannot create \(path): \(String(cString: strerror(code))) (injected)")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SpoolError(.write, "cannot create \(path): \(lastError())") }
        var offset = 0
        var failure: String? = nil
        if flock(fd, LOCK_EX | LOCK_NB) != 0 { failure = "cannot lock \(path): \(lastError())" }
        if failure == nil, let code = faults?.check(.write) {
            failure = "write to \(path) failed: \(String(cString: strerror(code))) (injected)"
        }
        if failure == nil {
            bytes.withUnsafeBytes { raw in
                while offset < raw.count {
                    let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        failure = "write to \(path) failed: \(lastError())"
                        return
                    }
                    offset += written
                }
            }
        }
        if sync && failure == nil, let code = faults?.check(.fsync) {
            failure = "fsync of \(path) failed: \(String(cString: strerror(code))) (injected)"
        }
        if sync && failure == nil && fsync(fd) != 0 { failure = "fsync of \(path) failed: \(lastError())" }
        if keepOpen && failure == nil { return fd }
        if close(fd) != 0 && failure == nil { failure = "close of \(path) failed: \(lastError())" }
        if let failure {
            unlink(path)
            throw SpoolError(.write, failure)
        }
        return nil
    }

    static func encodeEntry(_ metadata: SpoolMetadata, raw: [UInt8]) throws(SpoolError) -> [UInt8] {
        let json: Data
        do { json = try JSONEncoder().encode(metadata) } catch {
            throw SpoolError(.write, "cannot encode metadata: \(error)")
        }
        var bytes = Array("\(magic)\n".utf8)
        bytes += Array(json)
        bytes.append(0x0A)
        bytes += raw
        bytes += Array("\nend \(hexDigest(raw))\n".utf8)
        return bytes
    }

    /// The entry of a message kept in its own file: header, metadata, the message's digest.
    static func encodeEntry(_ metadata: SpoolMetadata, messageDigest: String) throws(SpoolError) -> [UInt8] {
        let json: Data
        do { json = try JSONEncoder().encode(metadata) } catch {
            throw SpoolError(.write, "cannot encode metadata: \(error)")
        }
        var bytes = Array("\(fileMagic)\n".utf8)
        bytes += Array(json)
        bytes += Array("\nend \(messageDigest)\n".utf8)
        return bytes
    }

    static func hexDigest(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }

    static func hex(_ digest: SHA256.Digest) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var output: [UInt8] = []
        for byte in digest {
            output.append(hex[Int(byte >> 4)])
            output.append(hex[Int(byte & 15)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Replaces an entry's state file atomically (tmp → rename). State is advisory and not fsync'd:
    /// after a crash an entry may be attempted earlier than planned (at-least-once allows that),
    /// while the entry itself is always durable.
    package func writeState(_ id: String, _ state: SpoolState) throws(SpoolError) {
        try writeState(id, state, directory: queue)
    }

    /// Replaces a dead letter's state (e.g. to record a replay attempt).
    package func writeDeadState(_ id: String, _ state: SpoolState) throws(SpoolError) {
        try writeState(id, state, directory: "\(path)/dead")
    }

    private func writeState(_ id: String, _ state: SpoolState, directory: String) throws(SpoolError) {
        let data: Data
        do { data = try JSONEncoder().encode(state) } catch {
            throw SpoolError(.write, "cannot encode state: \(error)")
        }
        let temporary = "\(path)/tmp/\(id).state.\(UInt32.random(in: 0...UInt32.max))"
        try Self.writeDurably(Array(data), to: temporary, sync: false, faults: faults)
        if let code = faults?.check(.rename) {
            unlink(temporary)
            throw SpoolError(.write, "rename of state for \(id) failed: \(String(cString: strerror(code))) (injected)")
        }
        guard rename(temporary, "\(directory)/\(id).state") == 0 else {
            unlink(temporary)
            throw SpoolError(.write, "rename of state for \(id) failed: \(Self.lastError())")
        }
    }

    // MARK: - Reading

    /// An entry as read from disk.
    package struct Entry: Sendable {
        package var metadata: SpoolMetadata
        /// The message: in memory (entries of format 1), or its `.eml` file, opened and verified.
        package var body: MessageBody
        package var state: SpoolState
        package var isDead: Bool
    }

    /// Reads and verifies an entry (live or dead).
    package func read(_ id: String) throws(SpoolError) -> Entry {
        guard SpoolID.isValid(id) else { throw SpoolError(.notFound, "no spool entry \(id)") }
        var directory = queue
        var isDead = false
        if access("\(queue)/\(id).msg", F_OK) != 0 {
            guard access("\(path)/dead/\(id).msg", F_OK) == 0 else {
                throw SpoolError(.notFound, "no spool entry \(id)")
            }
            directory = "\(path)/dead"
            isDead = true
        }
        if let code = faults?.check(.read) {
            throw SpoolError(
                .unreadable,
                "cannot read \(directory)/\(id).msg: \(String(cString: strerror(code))) (injected)"
            )
        }
        let (metadata, body) = try Self.decodeEntry(path: "\(directory)/\(id).msg")
        let state = readState(id, directory: directory, metadata: metadata)
        return Entry(metadata: metadata, body: body, state: state, isDead: isDead)
    }

    /// The state of a live entry alone (cheap: for building the schedule), `nil` if unreadable.
    package func state(_ id: String) -> SpoolState? {
        if let state = Self.readFile("\(queue)/\(id).state").flatMap({
            try? JSONDecoder().decode(SpoolState.self, from: Data($0))
        }) {
            return state
        }
        return Self.readMetadata(path: "\(queue)/\(id).msg").map {
            $0.initialState ?? SpoolState(nextAttemptMilliseconds: $0.receivedAtMilliseconds)
        }
    }

    /// The metadata of a live entry without reading its message; `nil` when it cannot be read.
    package func metadata(_ id: String) -> SpoolMetadata? {
        guard SpoolID.isValid(id) else { return nil }
        return Self.readMetadata(path: "\(queue)/\(id).msg")
    }

    /// The metadata line of an entry without reading the message.
    package static func readMetadata(path: String) -> SpoolMetadata? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        let magicLength = "\(magic)\n".utf8.count
        while head.count < 1 << 20 {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            head += chunk[..<count]
            if head.count > magicLength, let end = head[magicLength...].firstIndex(of: 0x0A) {
                return try? JSONDecoder().decode(SpoolMetadata.self, from: Data(head[magicLength..<end]))
            }
        }
        return nil
    }

    private func readState(_ id: String, directory: String, metadata: SpoolMetadata) -> SpoolState {
        if let bytes = Self.readFile("\(directory)/\(id).state"),
            let state = try? JSONDecoder().decode(SpoolState.self, from: Data(bytes))
        {
            return state
        }
        // No update yet (or a lost one): the state written with the entry, else due now.
        return metadata.initialState ?? SpoolState(nextAttemptMilliseconds: metadata.receivedAtMilliseconds)
    }

    static func readFile(_ path: String) -> [UInt8]? { FileContents.read(path: path) }

    /// N of an entry's "lmtphook-spool N" header line, if it has one.
    static func entryFormat(_ bytes: [UInt8]) -> Int? {
        let prefix = Array("lmtphook-spool ".utf8)
        guard bytes.starts(with: prefix) else { return nil }
        let digits = bytes[prefix.count...].prefix { $0 >= 0x30 && $0 <= 0x39 }.prefix(9)
        return Int(String(decoding: digits, as: UTF8.self))
    }

    static func decodeEntry(path: String) throws(SpoolError) -> (SpoolMetadata, MessageBody) {
        guard let bytes = readFile(path) else {
            if errno == ENOENT { throw SpoolError(.notFound, "\(path) is gone") }
            throw SpoolError(.unreadable, "cannot read \(path): \(lastError())")
        }
        let inline = bytes.starts(with: Array("\(magic)\n".utf8))
        let headerLength = (inline ? magic : fileMagic).utf8.count + 1
        guard inline || bytes.starts(with: Array("\(fileMagic)\n".utf8)),
            let jsonEnd = bytes[headerLength...].firstIndex(of: 0x0A)
        else {
            if let version = entryFormat(bytes), version > format {
                throw SpoolError(
                    .newerFormat,
                    "\(path) is an entry of format \(version), written by a newer lmtphook; left as it is"
                )
            }
            throw SpoolError(.damaged, "\(path): not a spool entry")
        }
        guard
            let metadata = try? JSONDecoder().decode(SpoolMetadata.self, from: Data(bytes[headerLength..<jsonEnd]))
        else {
            throw SpoolError(.damaged, "\(path): unreadable metadata")
        }
        guard inline else {
            let trailer = String(decoding: bytes[jsonEnd...], as: UTF8.self)
            guard trailer.hasPrefix("\nend "), trailer.hasSuffix("\n"), trailer.utf8.count == "\nend \n".utf8.count + 64
            else {
                throw SpoolError(.damaged, "\(path): truncated")
            }
            let file = try openMessage(entry: path, id: metadata.id, size: metadata.size)
            guard try digest(of: file) == trailer.dropFirst(5).dropLast() else {
                throw SpoolError(.damaged, "\(file.path): checksum mismatch")
            }
            return (metadata, .file(file))
        }
        let rawStart = jsonEnd + 1
        let trailerLength = "\nend \n".utf8.count + 64
        guard bytes.count == rawStart + metadata.size + trailerLength else {
            throw SpoolError(
                .damaged,
                "\(path): truncated (\(bytes.count) bytes, expected \(rawStart + metadata.size + trailerLength))"
            )
        }
        let raw = Array(bytes[rawStart..<(rawStart + metadata.size)])
        let trailer = String(decoding: bytes[(rawStart + metadata.size)...], as: UTF8.self)
        guard trailer == "\nend \(hexDigest(raw))\n" else { throw SpoolError(.damaged, "\(path): checksum mismatch") }
        return (metadata, .bytes(raw))
    }

    /// Opens the `.eml` of an entry: beside it, or still in `queue/` when a move to `dead/` or
    /// `quarantine/` was interrupted (the entry moves first, its message after).
    private static func openMessage(entry path: String, id: String, size: Int) throws(SpoolError) -> MessageFile {
        let directory = parent(of: path)
        let queue = parent(of: directory) + "/queue"
        var candidates = ["\(directory)/\(id).eml"]
        if directory != queue { candidates.append("\(queue)/\(id).eml") }
        for candidate in candidates {
            let file: MessageFile
            do throws(MessageFileError) {
                file = try MessageFile(opening: candidate)
            } catch {
                if error.code == ENOENT { continue }
                throw SpoolError(.unreadable, error.description)
            }
            guard file.size == size else {
                throw SpoolError(.damaged, "\(candidate): \(file.size) bytes, expected \(size)")
            }
            return file
        }
        throw SpoolError(.damaged, "\(path): its message \(id).eml is missing")
    }

    private static func digest(of file: MessageFile) throws(SpoolError) -> String {
        var hasher = SHA256()
        do { try file.forEachChunk { hasher.update(bufferPointer: $0) } } catch {
            throw SpoolError(.unreadable, "\(error)")
        }
        return hex(hasher.finalize())
    }

    /// Ids of live entries (sorted, oldest first) or of dead letters.
    package func ids(dead: Bool = false) -> [String] {
        let directory = dead ? "\(path)/dead" : queue
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var ids: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".msg") {
                let id = String(name.dropLast(4))
                if SpoolID.isValid(id) { ids.append(id) }
            }
        }
        return ids.sorted()
    }

    // MARK: - Finishing

    /// Removes a delivered entry; when this returns the removal is durable (the queue directory
    /// is synced, shared with concurrent writers), so a power loss cannot bring it back.
    package func complete(_ id: String) throws(SpoolError) {
        guard unlink("\(queue)/\(id).msg") == 0 || errno == ENOENT else {
            throw SpoolError(.write, "cannot remove \(queue)/\(id).msg: \(Self.lastError())")
        }
        unlink("\(queue)/\(id).state")
        unlink("\(queue)/\(id).eml")
        try queueSync.commit()
    }

    /// Moves an entry to `dead/` with its state (reason recorded), kept for inspection and replay.
    /// Durable when it returns: `dead/` (the new name) then `queue/` (the old one gone) are synced.
    package func deadLetter(_ id: String, state: SpoolState) throws(SpoolError) {
        try writeState(id, state, directory: "\(path)/dead")
        try move(id, to: "\(path)/dead", "dead/", sync: deadSync)
    }

    /// Moves a live entry's files to another spool directory and makes the move durable.
    private func move(_ id: String, to directory: String, _ label: String, sync: DirectorySync) throws(SpoolError) {
        if let code = faults?.check(.rename) {
            throw SpoolError(.write, "cannot move \(id) to \(label): \(String(cString: strerror(code))) (injected)")
        }
        guard rename("\(queue)/\(id).msg", "\(directory)/\(id).msg") == 0 else {
            throw SpoolError(.write, "cannot move \(id) to \(label): \(Self.lastError())")
        }
        // The message file follows its entry (an entry that moved without it still finds it in
        // queue/, and start-up recovery finishes the move).
        rename("\(queue)/\(id).eml", "\(directory)/\(id).eml")
        if directory.hasSuffix("/dead") {
            unlink("\(queue)/\(id).state")  // dead/ has its own, written first
        } else {
            rename("\(queue)/\(id).state", "\(directory)/\(id).state")
        }
        try sync.commit()
        try queueSync.commit()
    }

    /// Deletes an entry (live or dead) for good.
    package func drop(_ id: String) throws(SpoolError) {
        guard SpoolID.isValid(id) else { throw SpoolError(.notFound, "no spool entry \(id)") }
        var removed = false
        for (directory, sync) in [(queue, queueSync), ("\(path)/dead", deadSync)]
        where unlink("\(directory)/\(id).msg") == 0 {
            unlink("\(directory)/\(id).state")
            unlink("\(directory)/\(id).eml")
            unlink("\(queue)/\(id).eml")
            try sync.commit()  // a dropped entry must not come back after a power loss
            removed = true
        }
        if !removed { throw SpoolError(.notFound, "no spool entry \(id)") }
    }

    // MARK: - Locking

    /// An exclusive claim on an entry while it is being delivered (works across processes:
    /// `serve` and `spool replay` never deliver the same entry at the same time).
    package final class Claim: @unchecked Sendable {
        private let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }  // closing releases the flock
    }

    /// Claims an entry (a dead letter with `dead`); throws `.locked` when someone else holds it,
    /// `.notFound` when it is gone.
    package func claim(_ id: String, dead: Bool = false) throws(SpoolError) -> Claim {
        guard SpoolID.isValid(id) else { throw SpoolError(.notFound, "no spool entry \(id)") }
        let queue = dead ? "\(path)/dead" : self.queue
        if let code = faults?.check(.open) {
            throw SpoolError(
                .unreadable,
                "cannot open \(queue)/\(id).msg: \(String(cString: strerror(code))) (injected)"
            )
        }
        let fd = open("\(queue)/\(id).msg", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            // Only a missing file is "not found"; EMFILE, EACCES, EIO… are errors worth retrying.
            if errno == ENOENT { throw SpoolError(.notFound, "no spool entry \(id)") }
            throw SpoolError(.unreadable, "cannot open \(queue)/\(id).msg: \(Self.lastError())")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? nil : Self.lastError()
            close(fd)
            if let reason { throw SpoolError(.unreadable, "cannot lock \(queue)/\(id).msg: \(reason)") }
            throw SpoolError(.locked, "entry \(id) is being delivered by another process")
        }
        // It may have been completed between open and lock.
        var opened = stat()
        var named = stat()
        guard fstat(fd, &opened) == 0, stat("\(queue)/\(id).msg", &named) == 0, opened.st_ino == named.st_ino else {
            close(fd)
            throw SpoolError(.notFound, "no spool entry \(id)")
        }
        return Claim(fd: fd)
    }

    /// Moves a damaged live entry (and its state) to `quarantine/`, where it is kept for an operator.
    package func quarantine(_ id: String) throws(SpoolError) {
        guard SpoolID.isValid(id) else { throw SpoolError(.notFound, "no spool entry \(id)") }
        try move(id, to: "\(path)/quarantine", "quarantine/", sync: quarantineSync)
    }

    // MARK: - Recovery

    /// What start-up recovery found.
    package struct RecoveryReport: Sendable {
        package var removedTemporaryFiles = 0
        package var quarantined: [String] = []
        /// Entries that could not be read now (I/O errors): kept in place.
        package var unreadable: [String] = []
        package var entries = 0
    }

    /// Removes leftovers in `tmp/`, moves damaged entries to `quarantine/` (never deletes them).
    package func recover() -> RecoveryReport {
        var report = RecoveryReport()
        if let handle = opendir("\(path)/tmp") {
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                guard name != "." && name != ".." else { continue }
                // A file another live process is writing is flock'd: leave it alone.
                let fd = open("\(path)/tmp/\(name)", O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                if fd >= 0 {
                    defer { close(fd) }
                    if flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK { continue }
                }
                if unlink("\(path)/tmp/\(name)") == 0 { report.removedTemporaryFiles += 1 }
            }
            closedir(handle)
        }
        for id in ids() {
            do {
                _ = try Self.decodeEntry(path: "\(queue)/\(id).msg")
                report.entries += 1
            } catch {
                if error.kind == .notFound { continue }  // completed meanwhile by another process
                if error.kind == .unreadable || error.kind == .newerFormat {
                    report.unreadable.append("\(id): \(error.description)")
                    continue  // an I/O error now, or a newer entry, is not damage: kept in place
                }
                try? move(id, to: "\(path)/quarantine", "quarantine/", sync: quarantineSync)
                report.quarantined.append("\(id): \(error.description)")
            }
        }
        // State files whose entry is gone (completed before the state could be removed), and
        // message files without an entry: their entry moved to dead/ or quarantine/ first (the
        // move is finished), or it was never renamed into place or completed (removed, unless a
        // live process holds the file: it is still being queued).
        if let handle = opendir(queue) {
            var orphans: [String] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                for suffix in [".state", ".eml"]
                where name.hasSuffix(suffix) && access("\(queue)/\(name.dropLast(suffix.count)).msg", F_OK) != 0 {
                    orphans.append(name)
                }
            }
            closedir(handle)
            for name in orphans {
                let id = name.hasSuffix(".eml") ? String(name.dropLast(4)) : ""
                if let moved = ["dead", "quarantine"].first(where: { access("\(path)/\($0)/\(id).msg", F_OK) == 0 }) {
                    rename("\(queue)/\(name)", "\(path)/\(moved)/\(name)")
                    try? (moved == "dead" ? deadSync : quarantineSync).commit()
                    continue
                }
                if name.hasSuffix(".eml") {
                    let fd = open("\(queue)/\(name)", O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                    let held = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK
                    if fd >= 0 { close(fd) }
                    if held { continue }
                }
                unlink("\(queue)/\(name)")
            }
        }
        return report
    }

    /// Counts and bytes of live and dead entries.
    /// Whether a file can be created (and removed) in `tmp/` right now: the spool can take mail.
    package func isWritable() -> Bool {
        if faults?.check(.create) != nil { return false }
        let probe = "\(path)/tmp/.writable-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(probe, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        close(fd)
        unlink(probe)
        return true
    }

    package func statistics() -> (live: Int, liveBytes: Int, dead: Int, deadBytes: Int) {
        func measure(_ directory: String, _ ids: [String]) -> Int {
            ids.reduce(0) { total, id in
                var info = stat()
                var message = stat()
                let entry = stat("\(directory)/\(id).msg", &info) == 0 ? Int(info.st_size) : 0
                return total + entry + (stat("\(directory)/\(id).eml", &message) == 0 ? Int(message.st_size) : 0)
            }
        }
        let live = ids()
        let dead = ids(dead: true)
        return (live.count, measure(queue, live), dead.count, measure("\(path)/dead", dead))
    }
}
