import ArgumentParser
import Delivery
import Foundation
import LMTPHook
import MailCore
import NIOPosix
import Spool
import WebhookClient

#if canImport(Glibc)
import Glibc
#endif

/// `lmtphook spool …`: look into the spool and act on it, also while `serve` runs on it.
struct SpoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "List, inspect, replay and drop queued messages and dead letters.",
        discussion:
            "Safe while `serve` runs on the same spool: an entry being delivered is locked, and replay never delivers it twice at the same time.",
        subcommands: [List.self, Show.self, Replay.self, Drop.self, Stats.self]
    )

    /// `--spool DIR` (or LMTPHOOK_SPOOL).
    struct Location: ParsableArguments {
        @Option(help: ArgumentHelp("Spool directory (default: $LMTPHOOK_SPOOL).", valueName: "dir"))
        var spool: String?

        func open() throws -> Spool {
            guard let path = spool ?? ProcessInfo.processInfo.environment["LMTPHOOK_SPOOL"] else {
                throw ValidationError("give --spool DIR (or set LMTPHOOK_SPOOL)")
            }
            var info = stat()
            guard stat(path + "/queue", &info) == 0 else {
                SpoolCommand.fail("no spool at \(path) (no queue/ directory)", code: 66)
            }
            do { return try Spool(path: path) } catch { SpoolCommand.fail("\(error)", code: 74) }
        }
    }

    /// Entry selection shared by list and replay.
    struct Selection: ParsableArguments {
        @Flag(help: "Dead letters instead of queued messages.")
        var dead = false

        @Option(help: ArgumentHelp("Only entries for endpoints whose URL contains this.", valueName: "text"))
        var endpoint: String?

        @Option(help: ArgumentHelp("Only entries received within this long ago (e.g. 2h, 3d).", valueName: "duration"))
        var since: String?

        @Option(help: ArgumentHelp("Only entries received at least this long ago.", valueName: "duration"))
        var until: String?

        func validate() throws {
            for (name, value) in [("--since", since), ("--until", until)]
            where value.map({ RetryPolicy.parseDuration($0) == nil }) == true {
                throw ValidationError("\(name) takes a duration like 2h or 3d")
            }
        }

        func matches(_ entry: Spool.Entry, now: Int64) -> Bool {
            if let endpoint, !entry.metadata.endpoint.contains(endpoint) { return false }
            let age = now - entry.metadata.receivedAtMilliseconds
            if let since = since.flatMap(RetryPolicy.parseDuration), age > since { return false }
            if let until = until.flatMap(RetryPolicy.parseDuration), age < until { return false }
            return true
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("lmtphook spool: \(message)\n".utf8))
        Glibc.exit(code)
    }

    static func age(_ milliseconds: Int64) -> String {
        let seconds = max(0, milliseconds / 1000)
        if seconds < 120 { return "\(seconds)s" }
        if seconds < 7200 { return "\(seconds / 60)m" }
        if seconds < 172_800 { return "\(seconds / 3600)h" }
        return "\(seconds / 86_400)d"
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One line per entry: id, age, recipients, endpoint, attempts, next attempt, last status."
        )
        @OptionGroup var location: Location
        @OptionGroup var selection: Selection
        @Flag(help: "One JSON object per line.")
        var json = false

        func run() throws {
            let spool = try location.open()
            let now = UnixTime.now().milliseconds
            for id in spool.ids(dead: selection.dead) {
                guard let entry = try? spool.read(id), selection.matches(entry, now: now) else { continue }
                let last = entry.state.lastAttempt
                let lastStatus = last.map { $0.status > 0 ? "HTTP \($0.status)" : ($0.error ?? "error") } ?? "-"
                if json {
                    var object: [String: Any] = [
                        "id": id, "webhook_id": entry.metadata.webhookID,
                        "received_at": UnixTime(milliseconds: entry.metadata.receivedAtMilliseconds).rfc3339,
                        "rcpt_to": entry.metadata.rcptTo, "endpoint": entry.metadata.endpoint,
                        "attempts": entry.state.attemptCount,
                        "last_status": last?.status ?? NSNull(), "last_error": last?.error ?? NSNull(),
                        "dead": entry.isDead,
                    ]
                    object["next_attempt"] =
                        entry.isDead ? NSNull() : UnixTime(milliseconds: entry.state.nextAttemptMilliseconds).rfc3339
                    object["dead_reason"] = entry.state.deadReason ?? NSNull()
                    let data = try JSONSerialization.data(
                        withJSONObject: object,
                        options: [.sortedKeys, .withoutEscapingSlashes]
                    )
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    let next =
                        entry.isDead
                        ? "dead"
                        : (entry.state.nextAttemptMilliseconds <= now
                            ? "due" : "in " + SpoolCommand.age(entry.state.nextAttemptMilliseconds - now))
                    print(
                        "\(id)  age \(SpoolCommand.age(now - entry.metadata.receivedAtMilliseconds))  \(entry.metadata.rcptTo.joined(separator: ","))  \(entry.metadata.endpoint)  attempts \(entry.state.attemptCount)  next \(next)  last \(lastStatus)"
                    )
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Envelope, attempt history and last response of one entry; --raw prints the message."
        )
        @OptionGroup var location: Location
        @Argument(help: "Spool entry id.") var id: String
        @Flag(help: "Print the raw message instead.") var raw = false

        func run() throws {
            let spool = try location.open()
            let entry: Spool.Entry
            do { entry = try spool.read(id) } catch {
                SpoolCommand.fail("\(error)", code: error.kind == .notFound ? 1 : 74)
            }
            if raw {
                FileHandle.standardOutput.write(Data(entry.raw))
                return
            }
            let metadata = entry.metadata
            print(
                "id:          \(metadata.id)\(entry.isDead ? "  (dead letter: \(entry.state.deadReason ?? "?"))" : "")"
            )
            print("webhook id:  \(metadata.webhookID)")
            print("endpoint:    \(metadata.endpoint)")
            print("received:    \(UnixTime(milliseconds: metadata.receivedAtMilliseconds).rfc3339)")
            print("mail from:   <\(metadata.mailFrom)>")
            print("rcpt to:     \(metadata.rcptTo.map { "<\($0)>" }.joined(separator: " "))")
            print(
                "client:      \(metadata.client.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
            )
            print("size:        \(metadata.size) bytes")
            if !entry.isDead {
                print("next:        \(UnixTime(milliseconds: entry.state.nextAttemptMilliseconds).rfc3339)")
            }
            print("attempts:    \(entry.state.attemptCount)")
            for attempt in entry.state.attempts {
                let result = attempt.status > 0 ? "HTTP \(attempt.status)" : (attempt.error ?? "error")
                print(
                    "  \(UnixTime(milliseconds: attempt.atMilliseconds).rfc3339)  \(attempt.kind)  \(result)\(attempt.snippet.map { $0.isEmpty ? "" : "  \($0.prefix(120))" } ?? "")"
                )
            }
        }
    }

    struct Drop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete entries (queued or dead) for good.")
        @OptionGroup var location: Location
        @Argument(help: "Spool entry ids.") var ids: [String]

        func run() throws {
            let spool = try location.open()
            var failed = false
            for id in ids {
                do {
                    let claim = try spool.claim(id)
                    try spool.drop(id)
                    withExtendedLifetime(claim) {}
                    print("dropped \(id)")
                } catch  where error.kind == .notFound {
                    do {
                        try spool.drop(id)  // a dead letter
                        print("dropped \(id)")
                    } catch {
                        FileHandle.standardError.write(Data("lmtphook spool: \(error)\n".utf8))
                        failed = true
                    }
                } catch {
                    FileHandle.standardError.write(Data("lmtphook spool: \(error)\n".utf8))
                    failed = true
                }
            }
            if failed { throw ExitCode.failure }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts, bytes and oldest age, per endpoint.")
        @OptionGroup var location: Location

        func run() throws {
            let spool = try location.open()
            let now = UnixTime.now().milliseconds
            var perEndpoint: [String: (live: Int, dead: Int, bytes: Int, oldest: Int64)] = [:]
            for dead in [false, true] {
                for id in spool.ids(dead: dead) {
                    guard let entry = try? spool.read(id) else { continue }
                    var row = perEndpoint[entry.metadata.endpoint] ?? (0, 0, 0, now)
                    if dead { row.dead += 1 } else { row.live += 1 }
                    row.bytes += entry.metadata.size
                    row.oldest = min(row.oldest, entry.metadata.receivedAtMilliseconds)
                    perEndpoint[entry.metadata.endpoint] = row
                }
            }
            let totals = spool.statistics()
            print("queued \(totals.live) (\(totals.liveBytes) bytes), dead \(totals.dead) (\(totals.deadBytes) bytes)")
            for (endpoint, row) in perEndpoint.sorted(by: { $0.key < $1.key }) {
                print(
                    "\(endpoint)  queued \(row.live)  dead \(row.dead)  bytes \(row.bytes)  oldest \(SpoolCommand.age(now - row.oldest))"
                )
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliver entries now, with the same webhook id and signature scheme; prints a summary.",
            discussion:
                "Without ids, --all (or a filter) selects entries. Dead letters are replayed with --dead; if delivered they are removed."
        )
        @OptionGroup var location: Location
        @OptionGroup var selection: Selection
        @Argument(help: "Spool entry ids (or --all).") var ids: [String] = []
        @Flag(help: "All entries matching the filters.") var all = false
        @Flag(help: "Show what would be replayed, send nothing.") var dryRun = false
        @Option(help: ArgumentHelp("At most this many deliveries per second.", valueName: "n")) var rate: Double?
        @Option(help: ArgumentHelp("Deliver to this URL instead of each entry's endpoint.", valueName: "url"))
        var toURL: String?
        @Option(
            name: .customLong("webhook-secret"),
            help: ArgumentHelp(
                "Signing secret (whsec_…); repeatable. Also LMTPHOOK_WEBHOOK_SECRET.",
                valueName: "secret"
            )
        )
        var webhookSecrets: [String] = []
        @Option(help: ArgumentHelp("Seconds allowed for one request.", valueName: "seconds")) var timeout: Double = 30
        @Option(
            help: ArgumentHelp(
                "Configuration file: entries are delivered with their endpoint's format, headers and secrets (needed for endpoints that are not format json).",
                valueName: "file"
            )
        )
        var config: String?

        func validate() throws {
            if ids.isEmpty && !all && selection.endpoint == nil && selection.since == nil && selection.until == nil {
                throw ValidationError("name entry ids, or --all, or a filter (--endpoint, --since, --until)")
            }
            if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        }

        func run() async throws {
            let spool = try location.open()
            let now = UnixTime.now().milliseconds
            let candidates = ids.isEmpty ? spool.ids(dead: selection.dead) : ids
            let environment =
                ProcessInfo.processInfo.environment["LMTPHOOK_WEBHOOK_SECRET"].map {
                    $0.split(separator: " ").map(String.init)
                } ?? []
            let signer: WebhookSigner
            do { signer = try WebhookSigner(secrets: webhookSecrets + environment) } catch {
                throw ValidationError("\(error)")
            }
            var configured: [String: WebhookEndpoint] = [:]
            var delimiters: Set<Character> = ["+"]
            if let config {
                do {
                    let relay = try ConfigFile.load(path: config).relay
                    configured = Dictionary(relay.endpoints.map { ($0.name, $0) }) { $1 }
                    delimiters = relay.routes?.delimiters ?? delimiters
                } catch {
                    throw ValidationError("\(error)")
                }
            }
            let client = WebhookClient(threads: 1)
            let interactive = isatty(STDERR_FILENO) == 1
            var delivered = 0
            var failing = 0
            var dead = 0
            var busy = 0
            var missing = 0
            for (index, id) in candidates.enumerated() {
                if interactive {
                    let width = 30
                    let done = candidates.isEmpty ? width : width * index / candidates.count
                    FileHandle.standardError.write(
                        Data(
                            "\r[\(String(repeating: "=", count: done))\(String(repeating: " ", count: width - done))] \(index)/\(candidates.count)"
                                .utf8
                        )
                    )
                }
                // Spool file work runs on a thread pool, not on the cooperative pool.
                let (claim, locked, read) = try await NIOThreadPool.singleton.runIfActive {
                    () -> (Spool.Claim?, Bool, Spool.Entry?) in
                    do {
                        let claim = try spool.claim(id)
                        return (claim, false, try? spool.read(id))
                    } catch let error as SpoolError where error.kind == .locked {
                        return (nil, true, nil)
                    } catch {
                        return (nil, false, try? spool.read(id))  // not a live entry: maybe a dead letter
                    }
                }
                if locked {
                    busy += 1
                    continue
                }
                guard let entry = read else {
                    missing += 1
                    if !ids.isEmpty { FileHandle.standardError.write(Data("\nlmtphook spool: no entry \(id)\n".utf8)) }
                    continue
                }
                if ids.isEmpty && !selection.matches(entry, now: now) { continue }
                if entry.isDead != selection.dead && ids.isEmpty { continue }
                if dryRun {
                    print("would replay \(id) to \(toURL ?? entry.metadata.endpoint)")
                    continue
                }
                var endpoint = WebhookEndpoint(
                    url: entry.metadata.endpoint,
                    totalTimeoutMilliseconds: Int(timeout * 1000),
                    signer: signer
                )
                if let name = entry.metadata.endpointName, let known = configured[name] {
                    endpoint = known
                } else if let format = entry.metadata.format, format != "json" {
                    FileHandle.standardError.write(
                        Data(
                            "\nlmtphook spool: \(id) is for endpoint '\(entry.metadata.endpointName ?? "?")' (format \(format)): give --config FILE that defines it\n"
                                .utf8
                        )
                    )
                    failing += 1
                    continue
                }
                if let toURL { endpoint.url = toURL }
                let response: WebhookResponse
                do {
                    let body = try endpoint.render(spooled: entry.metadata, raw: entry.raw, delimiters: delimiters)
                    response = await client.post(endpoint.request(webhookID: entry.metadata.webhookID, body: body))
                } catch {
                    response = WebhookResponse(
                        status: 0,
                        error: WebhookTransportError(kind: .other, message: "cannot render: \(error)")
                    )
                }
                var state = entry.state
                state.append(
                    .init(
                        atMilliseconds: UnixTime.now().milliseconds,
                        status: response.status,
                        error: response.error.map { "\($0.kind.rawValue): \($0.message)" },
                        snippet: String(response.snippet.prefix(200)),
                        kind: "replay"
                    )
                )
                let outcome = DeliveryOutcome.classify(response, rule: endpoint.successRule)
                switch outcome {
                case .delivered: delivered += 1
                case .transient: failing += 1
                case .permanent(_, let reason):
                    dead += 1
                    state.deadReason = reason
                }
                try await NIOThreadPool.singleton.runIfActive { [state] in
                    switch outcome {
                    case .delivered: try? spool.drop(id)
                    case .transient:
                        if entry.isDead {
                            try? spool.writeDeadState(id, state)
                        } else {
                            try? spool.writeState(id, state)
                        }
                    case .permanent:
                        if entry.isDead {
                            try? spool.writeDeadState(id, state)
                        } else {
                            try? spool.deadLetter(id, state: state)
                        }
                    }
                    withExtendedLifetime(claim) {}  // the claim is held until the outcome is recorded
                }
                if let rate { try? await Task.sleep(for: .milliseconds(Int(1000 / rate))) }
            }
            if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            print(
                "replayed \(dryRun ? 0 : delivered + failing + dead): delivered \(delivered), still failing \(failing), dead \(dead)\(busy > 0 ? ", busy (being delivered by serve) \(busy)" : "")\(missing > 0 ? ", not found \(missing)" : "")"
            )
            await client.shutdown()
            if failing > 0 || dead > 0 || (missing > 0 && !ids.isEmpty) { throw ExitCode.failure }
        }
    }
}
