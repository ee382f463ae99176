import ArgumentParser
import Delivery
import Foundation
import LMTPHook
import LMTPServer
import Logging
import NIOPosix
import Spool
import WebhookClient

#if canImport(Glibc)
import Glibc
#endif

/// `lmtphook spool …`: look into the spool and act on it. When `serve` runs on the spool the
/// command goes through its control socket, so replays use the daemon's configuration and
/// engine; otherwise the command runs the same operations itself.
struct SpoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "List, inspect, replay and drop queued messages and dead letters.",
        discussion:
            "While `serve` runs on the spool, commands go through its control socket (SPOOL/control.sock): replays use the daemon's endpoints, headers, secrets and success rules, and never overlap another attempt. Without a daemon they run here; replays then need --config for endpoints the entries name.",
        subcommands: [List.self, Show.self, Replay.self, Drop.self, Stats.self]
    )

    /// `--spool DIR` (or LMTPHOOK_SPOOL) and the control socket.
    struct Location: ParsableArguments {
        @Option(help: ArgumentHelp("Spool directory (default: $LMTPHOOK_SPOOL).", valueName: "dir"))
        var spool: String?

        @Option(
            help: ArgumentHelp(
                "The daemon's control socket (default: DIR/control.sock, or spool.control_socket of --config).",
                valueName: "path"
            )
        )
        var controlSocket: String?

        func path() throws -> String {
            guard let path = spool ?? ProcessInfo.processInfo.environment["LMTPHOOK_SPOOL"] else {
                throw ValidationError("give --spool DIR (or set LMTPHOOK_SPOOL)")
            }
            var info = stat()
            guard stat(path + "/queue", &info) == 0 else {
                SpoolCommand.fail("no spool at \(path) (no queue/ directory)", code: 66)
            }
            return path
        }
    }

    /// Entry selection shared by list and replay.
    struct Selection: ParsableArguments {
        @Flag(help: "Dead letters instead of queued messages.")
        var dead = false

        @Option(help: ArgumentHelp("Only entries for this endpoint (its name, or text in its URL).", valueName: "text"))
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

        func apply(to request: inout SpoolRequest) {
            request.dead = dead
            request.endpoint = endpoint
            request.sinceMilliseconds = since.flatMap(RetryPolicy.parseDuration)
            request.untilMilliseconds = until.flatMap(RetryPolicy.parseDuration)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("lmtphook spool: \(message)\n".utf8))
        Glibc.exit(code)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One line per entry: id, age, recipients, endpoint, attempts, next attempt, last status."
        )
        @OptionGroup var location: Location
        @OptionGroup var selection: Selection
        @Flag(help: "One JSON object per line.")
        var json = false

        func run() async throws {
            var request = SpoolRequest(command: .list)
            selection.apply(to: &request)
            request.json = json
            try await SpoolRunner.run(request, location: location)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Envelope, attempt history and last response of one entry; --raw prints the message."
        )
        @OptionGroup var location: Location
        @Argument(help: "Spool entry id.") var id: String
        @Flag(help: "Print the raw message instead.") var raw = false

        func run() async throws {
            var request = SpoolRequest(command: .show)
            request.ids = [id]
            request.raw = raw
            try await SpoolRunner.run(request, location: location)
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete entries (queued or dead) for good.")
        @OptionGroup var location: Location
        @Argument(help: "Spool entry ids.") var ids: [String]

        func run() async throws {
            var request = SpoolRequest(command: .drop)
            request.ids = ids
            try await SpoolRunner.run(request, location: location)
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts, bytes and oldest age, per endpoint.")
        @OptionGroup var location: Location

        func run() async throws {
            try await SpoolRunner.run(SpoolRequest(command: .stats), location: location)
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliver entries now, with the same webhook id, as their endpoint would; prints a summary.",
            discussion:
                "Without ids, --all (or a filter) selects entries. Dead letters are replayed with --dead; if delivered they are removed. While serve runs, replays go through it; otherwise an entry is sent only if the endpoint it names is in --config with everything it was queued with (headers, signing, success rule), or it needs nothing (a plain JSON endpoint)."
        )
        @OptionGroup var location: Location
        @OptionGroup var selection: Selection
        @Argument(help: "Spool entry ids (or --all).") var ids: [String] = []
        @Flag(help: "All entries matching the filters.") var all = false
        @Flag(help: "Show what would be replayed, send nothing.") var dryRun = false
        @Option(help: ArgumentHelp("At most this many deliveries per second.", valueName: "n")) var rate: Double?
        @Option(
            help: ArgumentHelp(
                "Deliver to this URL instead, in the endpoint's format and signed, without the endpoint's headers.",
                valueName: "url"
            )
        )
        var toURL: String?
        @Option(
            name: .customLong("webhook-secret"),
            help: ArgumentHelp(
                "Signing secret (whsec_…) for entries of an endpoint that is not in --config; repeatable. Also LMTPHOOK_WEBHOOK_SECRET. Not used when serve runs (it signs with its own).",
                valueName: "secret"
            )
        )
        var webhookSecrets: [String] = []
        @Option(
            help: ArgumentHelp(
                "Configuration file with the entries' endpoints, when no daemon runs on the spool.",
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
            var request = SpoolRequest(command: .replay)
            selection.apply(to: &request)
            request.ids = ids
            request.all = all
            request.dryRun = dryRun
            request.rate = rate
            request.toURL = toURL
            let environment =
                ProcessInfo.processInfo.environment["LMTPHOOK_WEBHOOK_SECRET"].map {
                    $0.split(separator: " ").map(String.init)
                } ?? []
            let signer: WebhookSigner
            do { signer = try WebhookSigner(secrets: webhookSecrets + environment) } catch {
                throw ValidationError("\(error)")
            }
            try await SpoolRunner.run(request, location: location, config: config, signer: signer)
        }
    }
}

/// Runs a spool request through the daemon's control socket when one answers, else here.
enum SpoolRunner {
    static func run(
        _ request: SpoolRequest,
        location: SpoolCommand.Location,
        config: String? = nil,
        signer: WebhookSigner = .none
    ) async throws {
        let spoolPath = try location.path()
        var relay: RelayConfiguration?
        if let config {
            do { relay = try ConfigFile.load(path: config).relay } catch { throw ValidationError("\(error)") }
        }
        let socket =
            location.controlSocket ?? relay?.controlSocket ?? ControlServer.defaultPath(spool: spoolPath)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let printer = AnswerPrinter()
        let remote = try await pool.runIfActive { ControlClient.run(request, socket: socket, printer: printer) }
        let status: Int32
        if let remote {
            status = remote
        } else {
            status = try await local(request, spoolPath: spoolPath, relay: relay, signer: signer, pool: pool, printer)
        }
        printer.finish()
        try? await pool.shutdownGracefully()
        if status != 0 { throw ExitCode(status) }
    }

    /// No daemon: the same operations here, with an engine of our own for replays and drops
    /// (it delivers only what it is asked to).
    private static func local(
        _ request: SpoolRequest,
        spoolPath: String,
        relay: RelayConfiguration?,
        signer: WebhookSigner,
        pool: NIOThreadPool,
        _ printer: AnswerPrinter
    ) async throws -> Int32 {
        let spool: Spool
        do { spool = try await pool.runIfActive { try Spool(path: spoolPath) } } catch {
            SpoolCommand.fail("\(error)", code: 74)
        }
        var logger = Logger(label: "lmtphook-spool")
        logger.logLevel = .critical
        let needsEngine = request.command == .replay || request.command == .drop
        let engine =
            needsEngine
            ? DeliveryEngine(
                endpoints: relay?.endpoints ?? [],
                delimiters: relay?.routes?.delimiters ?? ["+"],
                spool: spool,
                threads: 2,
                settings: relay?.delivery ?? DeliverySettings(),
                scheduling: false,
                logger: logger
            ) : nil
        let running = engine.map { engine in Task { try await engine.run() } }
        let operations = SpoolOperations(
            spool: spool,
            engine: engine,
            local: true,
            files: pool,
            signer: signer.isEnabled ? signer : nil
        )
        let status = await operations.run(request) { answer in printer.print(answer) }
        running?.cancel()
        _ = await running?.result
        return status
    }
}

/// Writes answers to stdout and stderr; draws a progress bar on a terminal.
final class AnswerPrinter: Sendable {
    private let interactive = isatty(STDERR_FILENO) == 1

    func print(_ answer: SpoolAnswer) {
        switch answer {
        case .out(let text): FileHandle.standardOutput.write(Data((text + "\n").utf8))
        case .err(let text):
            if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            FileHandle.standardError.write(Data((text + "\n").utf8))
        case .raw(let bytes): FileHandle.standardOutput.write(Data(bytes))
        case .progress(let done, let total):
            guard interactive, total > 0 else { return }
            let width = 30
            let filled = width * done / total
            FileHandle.standardError.write(
                Data(
                    "\r[\(String(repeating: "=", count: filled))\(String(repeating: " ", count: width - filled))] \(done)/\(total)"
                        .utf8
                )
            )
        case .exit: break
        }
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// The CLI's end of the control socket: blocking POSIX calls, run on a thread pool.
enum ControlClient {
    /// The command's exit status from the daemon, or `nil` when no daemon answers on `socket`.
    static func run(_ request: SpoolRequest, socket: String, printer: AnswerPrinter) -> Int32? {
        let fd = UnixDomainSocket.connect(socket)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard var line = try? JSONEncoder().encode(request) else { return nil }
        line.append(0x0A)
        let sent = line.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return false }
                offset += written
            }
            return true
        }
        guard sent else { return nil }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let decoder = JSONDecoder()
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            pending += chunk[..<count]
            while let end = pending.firstIndex(of: 0x0A) {
                let frame = Data(pending[..<end])
                pending.removeSubrange(...end)
                guard let answer = try? decoder.decode(SpoolAnswer.self, from: frame) else { continue }
                if case .exit(let status) = answer { return status }
                printer.print(answer)
            }
        }
        printer.print(.err("lmtphook spool: the daemon closed the control socket before the command finished"))
        return 75
    }
}
