import Crypto
import GRDB
import MessageData
import Synchronization

/// Which endpoint took which recipient of which message (by content digest), for a window at
/// least as long as the MTA's queue lifetime: when the MTA retries a subset of recipients (one
/// endpoint of a fan-out failed), endpoints that already took those recipients are not sent the
/// message again. SQLite through GRDB, in WAL mode, in the spool directory (or in memory without
/// a spool). A lost journal write can at worst cause a duplicate with its own webhook id — never
/// a lost message: the journal is consulted only to skip work already done.
///
/// Only messages the MTA will retry in part are recorded (the relay records when a recipient of
/// the message got a 4xx), and the digests recorded are also kept in memory: a message whose
/// digest is not among them — nearly every message — costs no database access at all.
package final class DeliveryJournal: Sendable {
    /// How an endpoint took a recipient.
    package struct Taken: Sendable, Equatable {
        package var webhookID: String
        /// The spool entry when it was queued rather than delivered at once.
        package var spoolID: String?
        package var atMilliseconds: Int64
    }

    private let database: any DatabaseWriter
    /// Every digest in the journal, with its latest time (ms): the fast "never seen" answer.
    private let digests = Mutex<[String: Int64]>([:])
    /// Where it lives (`nil`: in memory).
    package let path: String?

    /// Opens (creating if needed) the journal at `path`, or one in memory.
    package init(path: String?) throws {
        self.path = path
        var configuration = Configuration()
        configuration.label = "lmtphook.journal"
        configuration.prepareDatabase { db in
            // WAL: readers never wait for the writer; NORMAL: a commit is durable once the WAL is
            // synced at checkpoint — a lost commit costs at most a duplicate, never mail.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        if let path {
            database = try DatabasePool(path: path, configuration: configuration)
        } else {
            database = try DatabaseQueue(configuration: configuration)
        }
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: taken") { db in
            try db.create(table: "taken") { table in
                table.column("digest", .text).notNull()
                table.column("endpoint", .text).notNull()
                table.column("recipient", .text).notNull()
                table.column("webhook_id", .text).notNull()
                table.column("spool_id", .text)
                table.column("at", .integer).notNull()
                table.primaryKey(["digest", "endpoint", "recipient"])
            }
            try db.create(index: "taken_at", on: "taken", columns: ["at"])
        }
        try migrator.migrate(database)
        let known = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT digest, MAX(at) AS at FROM taken GROUP BY digest").map {
                (row: Row) -> (String, Int64) in (row["digest"], row["at"])
            }
        }
        digests.withLock { $0 = Dictionary(known) { max($0, $1) } }
    }

    /// Whether anything was recorded for the message `digest` since `since` (no database access).
    package func knows(digest: String, since: Int64) -> Bool {
        digests.withLock { ($0[digest] ?? Int64.min) >= since }
    }

    /// The digest a message is known by: its envelope sender and its bytes (the MTA retries
    /// with both unchanged).
    package static func digest(mailFrom: String, raw: [UInt8]) -> String {
        // Bytes in memory cannot fail to read.
        (try? digest(mailFrom: mailFrom, body: .bytes(raw))) ?? ""
    }

    /// The digest of a message in memory or in a file (read in chunks; blocking).
    package static func digest(mailFrom: String, body: MessageBody) throws -> String {
        var hasher = SHA256()
        hasher.update(data: Array("lmtphook-journal-v1\n\(mailFrom)\n".utf8))
        try body.forEachChunk { hasher.update(bufferPointer: $0) }
        return hasher.finalize().map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// The recipients of `recipients` that `endpoint` already took for the message `digest`
    /// since `since` (milliseconds since 1970).
    package func taken(
        digest: String,
        endpoint: String,
        recipients: [String],
        since: Int64
    ) async throws
        -> [String: Taken]
    {
        guard knows(digest: digest, since: since) else { return [:] }
        return try await database.read { db in
            var found: [String: Taken] = [:]
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT recipient, webhook_id, spool_id, at FROM taken
                    WHERE digest = ? AND endpoint = ? AND at >= ?
                    """,
                arguments: [digest, endpoint, since]
            )
            let wanted = Set(recipients)
            for row in rows {
                let recipient: String = row["recipient"]
                guard wanted.contains(recipient) else { continue }
                found[recipient] = Taken(
                    webhookID: row["webhook_id"],
                    spoolID: row["spool_id"],
                    atMilliseconds: row["at"]
                )
            }
            return found
        }
    }

    /// Records that `endpoint` took `recipients` of the message `digest` (delivered, or queued
    /// as `spoolID`).
    package func record(
        digest: String,
        endpoint: String,
        recipients: [String],
        webhookID: String,
        spoolID: String?,
        at milliseconds: Int64
    ) async throws {
        digests.withLock { $0[digest] = max($0[digest] ?? Int64.min, milliseconds) }
        try await database.write { db in
            for recipient in recipients {
                try db.execute(
                    sql: """
                        INSERT INTO taken (digest, endpoint, recipient, webhook_id, spool_id, at)
                        VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT (digest, endpoint, recipient) DO UPDATE SET
                            webhook_id = excluded.webhook_id, spool_id = excluded.spool_id, at = excluded.at
                        """,
                    arguments: [digest, endpoint, recipient, webhookID, spoolID, milliseconds]
                )
            }
        }
    }

    /// Forgets what is older than `before`; returns how many rows went.
    @discardableResult
    package func prune(before milliseconds: Int64) async throws -> Int {
        digests.withLock { $0 = $0.filter { $0.value >= milliseconds } }
        return try await database.write { db in
            try db.execute(sql: "DELETE FROM taken WHERE at < ?", arguments: [milliseconds])
            return db.changesCount
        }
    }

    /// Rows in the journal.
    package func count() async throws -> Int {
        try await database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM taken") ?? 0 }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
