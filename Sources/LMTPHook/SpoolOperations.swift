import Delivery
import Foundation
import MailCore
import NIOPosix
import Spool
import WebhookClient

/// What `lmtphook spool list|show|stats|replay|drop` do, in one place: the daemon runs them for
/// its control socket, the CLI runs them itself when no daemon runs on the spool. Output goes
/// through `emit` as ``SpoolAnswer`` frames; the result is the exit status. Spool file work runs
/// on `files`, never on the cooperative pool. URLs are shown masked (``EndpointMasking``).
package struct SpoolOperations: Sendable {
    package let spool: Spool
    /// The engine replays and drops go through (the daemon's, or one the CLI runs in-process).
    package let engine: DeliveryEngine?
    /// `true` when this runs outside the daemon: replays check each entry's recorded endpoint
    /// requirements against the configuration given.
    package let local: Bool
    package let files: NIOThreadPool
    /// Signs entries of an endpoint that is not configured here (`spool replay --webhook-secret`).
    package let signer: WebhookSigner?

    package init(
        spool: Spool,
        engine: DeliveryEngine?,
        local: Bool,
        files: NIOThreadPool,
        signer: WebhookSigner? = nil
    ) {
        self.spool = spool
        self.engine = engine
        self.local = local
        self.files = files
        self.signer = signer
    }

    package typealias Emit = @Sendable (SpoolAnswer) async -> Void

    /// Runs the request; returns the exit status (0 ok, 1 something failed or was not found,
    /// 74 an I/O error).
    package func run(_ request: SpoolRequest, emit: Emit) async -> Int32 {
        switch request.command {
        case .list: return await list(request, emit)
        case .show: return await show(request, emit)
        case .stats: return await stats(emit)
        case .replay: return await replay(request, emit)
        case .drop: return await drop(request, emit)
        }
    }

    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await files.runIfActive(work)
    }

    /// The ids a request names, or those of the whole queue (or dead/).
    private func candidates(_ request: SpoolRequest) async -> [String] {
        if !request.ids.isEmpty { return request.ids }
        let spool = spool
        return (try? await blocking { spool.ids(dead: request.dead) }) ?? []
    }

    /// One entry read from disk (off the cooperative pool), one at a time: a listing of a big
    /// queue never holds more than one message in memory.
    private func entry(_ id: String) async -> Result<Spool.Entry, SpoolError> {
        let spool = spool
        do {
            return try await blocking { Result { () throws(SpoolError) in try spool.read(id) } }
        } catch {
            return .failure(SpoolError(.unreadable, "\(error)"))
        }
    }

    static func endpointLabel(_ metadata: SpoolMetadata) -> String {
        let url = EndpointMasking.url(metadata.endpoint)
        return metadata.endpointName.map { "\($0) (\(url))" } ?? url
    }

    static func age(_ milliseconds: Int64) -> String {
        let seconds = max(0, milliseconds / 1000)
        if seconds < 120 { return "\(seconds)s" }
        if seconds < 7200 { return "\(seconds / 60)m" }
        if seconds < 172_800 { return "\(seconds / 3600)h" }
        return "\(seconds / 86_400)d"
    }

    private func list(_ request: SpoolRequest, _ emit: Emit) async -> Int32 {
        let now = UnixTime.now().milliseconds
        for id in await candidates(request) {
            guard case .success(let entry) = await entry(id),
                request.matches(
                    name: entry.metadata.endpointName,
                    url: EndpointMasking.url(entry.metadata.endpoint),
                    receivedAt: entry.metadata.receivedAtMilliseconds,
                    now: now
                )
            else { continue }
            let last = entry.state.lastAttempt
            if request.json {
                var object: [String: Any] = [
                    "id": id, "webhook_id": entry.metadata.webhookID,
                    "received_at": UnixTime(milliseconds: entry.metadata.receivedAtMilliseconds).rfc3339,
                    "rcpt_to": entry.metadata.rcptTo, "endpoint": EndpointMasking.url(entry.metadata.endpoint),
                    "endpoint_name": entry.metadata.endpointName ?? NSNull(),
                    "attempts": entry.state.attemptCount,
                    "last_status": last?.status ?? NSNull(), "last_error": last?.error ?? NSNull(),
                    "dead": entry.isDead,
                ]
                object["next_attempt"] =
                    entry.isDead ? NSNull() : UnixTime(milliseconds: entry.state.nextAttemptMilliseconds).rfc3339
                object["dead_reason"] = entry.state.deadReason ?? NSNull()
                guard
                    let data = try? JSONSerialization.data(
                        withJSONObject: object,
                        options: [.sortedKeys, .withoutEscapingSlashes]
                    )
                else { continue }
                await emit(.out(String(decoding: data, as: UTF8.self)))
            } else {
                let lastStatus = last.map { $0.status > 0 ? "HTTP \($0.status)" : ($0.error ?? "error") } ?? "-"
                let next =
                    entry.isDead
                    ? "dead"
                    : (entry.state.nextAttemptMilliseconds <= now
                        ? "due" : "in " + Self.age(entry.state.nextAttemptMilliseconds - now))
                await emit(
                    .out(
                        "\(id)  age \(Self.age(now - entry.metadata.receivedAtMilliseconds))  \(entry.metadata.rcptTo.joined(separator: ","))  \(Self.endpointLabel(entry.metadata))  attempts \(entry.state.attemptCount)  next \(next)  last \(lastStatus)"
                    )
                )
            }
        }
        return 0
    }

    private func show(_ request: SpoolRequest, _ emit: Emit) async -> Int32 {
        guard let id = request.ids.first else {
            await emit(.err("lmtphook spool: name an entry id"))
            return 64
        }
        let entry: Spool.Entry
        switch await self.entry(id) {
        case .success(let found): entry = found
        case .failure(let error):
            await emit(.err("lmtphook spool: \(error)"))
            return error.kind == .notFound ? 1 : 74
        }
        if request.raw {
            let body = entry.body
            do {
                await emit(.raw(try await blocking { try body.contents() }))
            } catch {
                await emit(.err("lmtphook spool: \(error)"))
                return 74
            }
            return 0
        }
        let metadata = entry.metadata
        var lines = [
            "id:          \(metadata.id)\(entry.isDead ? "  (dead letter: \(entry.state.deadReason ?? "?"))" : "")",
            "webhook id:  \(metadata.webhookID)",
            "endpoint:    \(Self.endpointLabel(metadata))",
            "received:    \(UnixTime(milliseconds: metadata.receivedAtMilliseconds).rfc3339)",
            "mail from:   <\(metadata.mailFrom)>",
            "rcpt to:     \(metadata.rcptTo.map { "<\($0)>" }.joined(separator: " "))",
            "client:      \(metadata.client.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))",
            "size:        \(metadata.size) bytes",
        ]
        if !entry.isDead {
            lines.append("next:        \(UnixTime(milliseconds: entry.state.nextAttemptMilliseconds).rfc3339)")
        }
        lines.append("attempts:    \(entry.state.attemptCount)")
        for attempt in entry.state.attempts {
            let result = attempt.status > 0 ? "HTTP \(attempt.status)" : (attempt.error ?? "error")
            lines.append(
                "  \(UnixTime(milliseconds: attempt.atMilliseconds).rfc3339)  \(attempt.kind)  \(result)\(attempt.snippet.map { $0.isEmpty ? "" : "  \($0.prefix(120))" } ?? "")"
            )
        }
        for line in lines { await emit(.out(line)) }
        return 0
    }

    private func stats(_ emit: Emit) async -> Int32 {
        let spool = spool
        let now = UnixTime.now().milliseconds
        guard
            let (rows, totals) = try? await blocking({
                () -> ([String: (live: Int, dead: Int, bytes: Int, oldest: Int64)], (Int, Int, Int, Int)) in
                var rows: [String: (live: Int, dead: Int, bytes: Int, oldest: Int64)] = [:]
                for dead in [false, true] {
                    for id in spool.ids(dead: dead) {
                        guard let entry = try? spool.read(id) else { continue }
                        let label = Self.endpointLabel(entry.metadata)
                        var row = rows[label] ?? (0, 0, 0, now)
                        if dead { row.dead += 1 } else { row.live += 1 }
                        row.bytes += entry.metadata.size
                        row.oldest = min(row.oldest, entry.metadata.receivedAtMilliseconds)
                        rows[label] = row
                    }
                }
                let totals = spool.statistics()
                return (rows, (totals.live, totals.liveBytes, totals.dead, totals.deadBytes))
            })
        else { return 74 }
        await emit(.out("queued \(totals.0) (\(totals.1) bytes), dead \(totals.2) (\(totals.3) bytes)"))
        for (label, row) in rows.sorted(by: { $0.key < $1.key }) {
            await emit(
                .out(
                    "\(label)  queued \(row.live)  dead \(row.dead)  bytes \(row.bytes)  oldest \(Self.age(now - row.oldest))"
                )
            )
        }
        return 0
    }

    private func replay(_ request: SpoolRequest, _ emit: Emit) async -> Int32 {
        guard let engine else {
            await emit(.err("lmtphook spool: no delivery engine to replay with"))
            return 1
        }
        let now = UnixTime.now().milliseconds
        let candidates = await candidates(request)
        if let toURL = request.toURL, !request.dryRun {
            await emit(
                .err(
                    "lmtphook spool: --to-url: entries go to \(EndpointMasking.url(toURL)) in their endpoint's format and signed as usual, without the endpoint's headers (they may carry credentials for the original host)"
                )
            )
        }
        var counts = (delivered: 0, failing: 0, dead: 0, busy: 0, missing: 0, refused: 0)
        for (index, id) in candidates.enumerated() {
            await emit(.progress(done: index, total: candidates.count))
            guard case .success(let entry) = await entry(id) else {
                counts.missing += 1
                if !request.ids.isEmpty { await emit(.err("lmtphook spool: no entry \(id)")) }
                continue
            }
            if request.ids.isEmpty
                && (entry.isDead != request.dead
                    || !request.matches(
                        name: entry.metadata.endpointName,
                        url: EndpointMasking.url(entry.metadata.endpoint),
                        receivedAt: entry.metadata.receivedAtMilliseconds,
                        now: now
                    ))
            {
                continue
            }
            if request.dryRun {
                await emit(
                    .out(
                        "would replay \(id) to \(request.toURL.map(EndpointMasking.url) ?? Self.endpointLabel(entry.metadata))"
                    )
                )
                continue
            }
            switch await engine.replay(
                id,
                dead: entry.isDead,
                toURL: request.toURL,
                checkRequirements: local,
                signer: signer
            ) {
            case .delivered: counts.delivered += 1
            case .failing: counts.failing += 1
            case .dead: counts.dead += 1
            case .busy: counts.busy += 1
            case .missing: counts.missing += 1
            case .refused(let reason):
                counts.refused += 1
                await emit(
                    .err(
                        "lmtphook spool: \(id) not sent: \(reason)\(local ? " (no daemon runs on this spool: give --config FILE with that endpoint as the daemon has it)" : "")"
                    )
                )
            }
            if let rate = request.rate, index + 1 < candidates.count {
                await engine.pause(milliseconds: Int64(1000 / rate))
            }
        }
        var summary =
            "replayed \(request.dryRun ? 0 : counts.delivered + counts.failing + counts.dead): delivered \(counts.delivered), still failing \(counts.failing), dead \(counts.dead)"
        if counts.busy > 0 { summary += ", busy (being delivered by serve) \(counts.busy)" }
        if counts.refused > 0 { summary += ", not sent \(counts.refused)" }
        if counts.missing > 0 { summary += ", not found \(counts.missing)" }
        await emit(.out(summary))
        let failed =
            counts.failing > 0 || counts.dead > 0 || counts.refused > 0 || (counts.missing > 0 && !request.ids.isEmpty)
        return failed ? 1 : 0
    }

    private func drop(_ request: SpoolRequest, _ emit: Emit) async -> Int32 {
        guard let engine else { return 1 }
        var failed = false
        for id in request.ids {
            switch await engine.drop(id) {
            case .delivered: await emit(.out("dropped \(id)"))
            case .busy:
                failed = true
                await emit(.err("lmtphook spool: entry \(id) is being delivered right now; try again"))
            case .missing:
                failed = true
                await emit(.err("lmtphook spool: no spool entry \(id)"))
            case .refused(let reason), .failing(let reason), .dead(let reason):
                failed = true
                await emit(.err("lmtphook spool: \(reason)"))
            }
        }
        return failed ? 1 : 0
    }
}
