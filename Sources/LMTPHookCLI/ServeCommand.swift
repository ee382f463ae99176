import ArgumentParser
import Delivery
import Foundation
import LMTPCore
import LMTPHook
import LMTPServer
import Logging
import MailCore
import Metrics
import NIOPosix
import Prometheus
import ServiceLifecycle
import Spool
import UnixSignals
import WebhookClient

#if canImport(Glibc)
import Glibc
#endif

/// `lmtphook serve`: the relay.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Accept mail over LMTP and POST each message as JSON to a webhook.",
        discussion: """
            Without --webhook or --config, messages go to a built-in local receiver that prints each JSON document on stdout.
            With --config FILE, everything comes from the file (listeners, limits, spool, endpoints, routes). Every other flag sets the file key it names in its help, over the file's value, with the same default and validation; --socket and --listen add listeners. --webhook and the flags of its endpoint define the one endpoint of a configuration without a file.
            SIGHUP: reload the configuration file (routes, endpoints); a file with errors is refused and the running configuration stays.
            SIGTERM or SIGINT: stop accepting, let transactions in flight finish, answer new commands with 421, exit 0.
            """
    )

    @Option(help: ArgumentHelp("Configuration file (YAML); see deploy/lmtphook.example.yaml.", valueName: "file"))
    var config: String?

    @Option(
        help: ArgumentHelp(
            "UNIX socket to listen on (a stale socket file is replaced; a live one is refused).",
            valueName: "path"
        )
    )
    var socket: String?

    @Option(help: ArgumentHelp("File mode of the UNIX socket, octal (listen[].mode; default 0660).", valueName: "mode"))
    var socketMode: String?

    @Option(
        help: ArgumentHelp("TCP address to listen on; repeatable. Port 0 picks a free port.", valueName: "host:port")
    )
    var listen: [String] = []

    @Option(
        help: ArgumentHelp("Webhook URL (http or https) that receives one JSON document per message.", valueName: "url")
    )
    var webhook: String?

    @Option(
        help: ArgumentHelp(
            "Spool directory (created if missing; spool.path). With a spool, messages the webhook cannot take now are queued durably and retried; without one they get 451 and the MTA retries.",
            valueName: "dir"
        )
    )
    var spool: String?

    @Option(
        name: .customLong("webhook-secret"),
        help: ArgumentHelp(
            "Standard Webhooks signing secret (whsec_<base64>); repeatable for rotation. Also LMTPHOOK_WEBHOOK_SECRET.",
            valueName: "secret"
        )
    )
    var webhookSecrets: [String] = []

    @Option(
        name: .customLong("webhook-header"),
        help: ArgumentHelp("Extra request header, e.g. 'Authorization: Bearer …'; repeatable.", valueName: "header")
    )
    var webhookHeaders: [String] = []

    @Option(
        help: ArgumentHelp(
            "Time the MTA waits for the first webhook attempt before the message is queued instead (needs --spool; delivery.sync_budget, default 5s).",
            valueName: "duration"
        )
    )
    var syncBudget: String?

    @Option(
        help: ArgumentHelp(
            "Transient failures in a row that open an endpoint's circuit: new mail is queued without an attempt and retries wait (needs --spool; delivery.breaker_failures, default 5).",
            valueName: "n"
        )
    )
    var breakerFailures: String?

    @Option(
        help: ArgumentHelp(
            "How long an open circuit stays open before one request may probe the endpoint again (delivery.breaker_cooldown, default 30s).",
            valueName: "duration"
        )
    )
    var breakerCooldown: String?

    @Option(
        help: ArgumentHelp(
            "Delays between retries, comma-separated; the last repeats, ±20 % jitter (spool.retry_schedule, default 5s,5m,30m,2h,5h,10h,14h,20h,24h).",
            valueName: "list"
        )
    )
    var retrySchedule: String?

    @Option(
        help: ArgumentHelp(
            "Queued messages older than this become dead letters, kept, never dropped (spool.max_age, default 5d).",
            valueName: "duration"
        )
    )
    var maxAge: String?

    @Option(
        help: ArgumentHelp(
            "Name announced in the greeting and LHLO reply (hostname; default: this host's name).",
            valueName: "name"
        )
    )
    var hostname: String?

    @Option(
        help: ArgumentHelp(
            "Largest message accepted, in bytes (suffixes K, M, G allowed); advertised as SIZE (limits.max_message_size, default 50M).",
            valueName: "size"
        )
    )
    var maxMessageSize: String?

    @Option(
        help: ArgumentHelp(
            "Most recipients per transaction; more get 452 4.5.3 (limits.max_recipients, default 1000).",
            valueName: "n"
        )
    )
    var maxRecipients: String?

    @Option(
        help: ArgumentHelp(
            "Seconds a connection may stay silent before 421 4.4.2 (limits.command_timeout, default 300).",
            valueName: "seconds"
        )
    )
    var idleTimeout: String?

    @Option(
        help: ArgumentHelp(
            "Seconds allowed for one webhook request, connection included (the --webhook endpoint's timeout, default 30).",
            valueName: "seconds"
        )
    )
    var webhookTimeout: String?

    @Option(
        help: ArgumentHelp(
            "Seconds allowed to connect to the webhook (the --webhook endpoint's connect_timeout, default 5).",
            valueName: "seconds"
        )
    )
    var connectTimeout: String?

    @Option(
        help: ArgumentHelp(
            "Attachment contents in the payload: 'metadata' (names, sizes, hashes) or 'inline' (also base64 content up to --inline-attachment-limit); the endpoint's attachments, default metadata.",
            valueName: "mode"
        )
    )
    var attachments: String?

    @Option(
        help: ArgumentHelp(
            "Largest attachment sent inline with --attachments inline, suffixes K, M, G (the endpoint's inline_limit, default 1M).",
            valueName: "size"
        )
    )
    var inlineAttachmentLimit: String?

    @Flag(help: "Send raw_base64 as null instead of the whole message (the endpoint's include_raw: false).")
    var omitRaw = false

    @Option(
        help: ArgumentHelp(
            "Webhook requests in flight at most (delivery.threads, default 16).",
            valueName: "n"
        )
    )
    var deliveryThreads: String?

    @Option(
        help: ArgumentHelp(
            "Seconds transactions in flight get to finish after SIGTERM (delivery.shutdown_grace, default 30).",
            valueName: "seconds"
        )
    )
    var shutdownGrace: String?

    @Option(
        help: ArgumentHelp(
            "Serve GET /metrics (Prometheus) and GET /healthz on this address (metrics.listen).",
            valueName: "host:port"
        )
    )
    var metricsListen: String?

    @OptionGroup var logging: LogOptions

    func validate() throws {
        if config != nil {
            let endpointFlags: [(String, Bool)] = [
                ("--webhook", webhook != nil), ("--webhook-secret", !webhookSecrets.isEmpty),
                ("--webhook-header", !webhookHeaders.isEmpty), ("--webhook-timeout", webhookTimeout != nil),
                ("--connect-timeout", connectTimeout != nil), ("--attachments", attachments != nil),
                ("--inline-attachment-limit", inlineAttachmentLimit != nil), ("--omit-raw", omitRaw),
            ]
            if let (flag, _) = endpointFlags.first(where: \.1) {
                throw ValidationError(
                    "\(flag) defines the endpoint of a configuration without a file; with --config, endpoints are set in the file (its endpoints entries)"
                )
            }
        } else if socket == nil && listen.isEmpty {
            throw ValidationError("give --socket PATH or --listen HOST:PORT (or both), or --config FILE")
        }
        for header in webhookHeaders where Self.parseHeader(header) == nil {
            throw ValidationError("--webhook-header must look like 'Name: value', got \(header)")
        }
        guard config == nil else { return }  // the file and the flags over it are checked at start
        if spool == nil,
            let flag = [("--retry-schedule", retrySchedule), ("--max-age", maxAge)].first(where: { $0.1 != nil })
        {
            throw ValidationError("\(flag.0) is a spool setting: give --spool DIR with it")
        }
        // Without a file the flags are the whole configuration: check it now (exit 64 on an error).
        do { _ = try effectiveConfiguration() } catch { throw ValidationError("\(error)") }
    }

    private var environment: [String: String] { ProcessInfo.processInfo.environment }

    static func parseHeader(_ text: String) -> WebhookHeader? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let name = text[..<colon].trimmingCharacters(in: .whitespaces)
        let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
            return nil
        }
        return WebhookHeader(name, value)
    }

    /// Seconds as a flag gives them (`30`, `1.5`) as a duration the file takes (`30000ms`); a
    /// value that is not a number is passed on as typed, for the parser to refuse.
    private static func seconds(_ text: String) -> String {
        Double(text).map { "\(Int(($0 * 1000).rounded()))ms" } ?? text
    }

    /// Every flag given, as the file key it sets.
    func overrides() -> [ConfigOverride] {
        var result: [ConfigOverride] = []
        if let socket {
            // A path typed on the command line is relative to the working directory.
            let path = socket.hasPrefix("/") ? socket : FileManager.default.currentDirectoryPath + "/" + socket
            result.append(
                ConfigOverride("--socket", "listen[+]", mapping: [("socket", path), ("mode", socketMode ?? "0660")])
            )
        }
        for address in listen { result.append(ConfigOverride("--listen", "listen[+].tcp", address)) }
        if let spool { result.append(ConfigOverride("--spool", "spool.path", spool)) }
        if let retrySchedule {
            let list = retrySchedule.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            result.append(ConfigOverride("--retry-schedule", "spool.retry_schedule", list: list))
        }
        let scalars: [(String, String, String?)] = [
            ("--max-age", "spool.max_age", maxAge),
            ("--sync-budget", "delivery.sync_budget", syncBudget),
            ("--breaker-failures", "delivery.breaker_failures", breakerFailures),
            ("--breaker-cooldown", "delivery.breaker_cooldown", breakerCooldown),
            ("--delivery-threads", "delivery.threads", deliveryThreads),
            ("--shutdown-grace", "delivery.shutdown_grace", shutdownGrace.map(Self.seconds)),
            ("--hostname", "hostname", hostname),
            ("--max-message-size", "limits.max_message_size", maxMessageSize),
            ("--max-recipients", "limits.max_recipients", maxRecipients),
            ("--idle-timeout", "limits.command_timeout", idleTimeout.map(Self.seconds)),
            ("--metrics-listen", "metrics.listen", metricsListen),
        ]
        for case let (flag, key, value?) in scalars { result.append(ConfigOverride(flag, key, value)) }
        guard let webhook else { return result }
        let endpoint = "endpoints[0]"
        result.append(ConfigOverride("--webhook", "\(endpoint).name", "default"))
        result.append(ConfigOverride("--webhook", "\(endpoint).url", webhook))
        var secrets = webhookSecrets
        if let fromEnvironment = environment["LMTPHOOK_WEBHOOK_SECRET"] {
            secrets += fromEnvironment.split(whereSeparator: \.isWhitespace).map(String.init)
        }
        if !secrets.isEmpty { result.append(ConfigOverride("--webhook-secret", "\(endpoint).secret", list: secrets)) }
        let headers = webhookHeaders.compactMap(Self.parseHeader).map { ($0.name, $0.value) }
        if !headers.isEmpty {
            result.append(ConfigOverride("--webhook-header", "\(endpoint).headers", mapping: headers))
        }
        let fields: [(String, String, String?)] = [
            ("--webhook-timeout", "timeout", webhookTimeout.map(Self.seconds)),
            ("--connect-timeout", "connect_timeout", connectTimeout.map(Self.seconds)),
            ("--attachments", "attachments", attachments),
            ("--inline-attachment-limit", "inline_limit", inlineAttachmentLimit),
            ("--omit-raw", "include_raw", omitRaw ? "false" : nil),
        ]
        for case let (flag, key, value?) in fields { result.append(ConfigOverride(flag, "\(endpoint).\(key)", value)) }
        return result
    }

    /// ``effectiveConfiguration()`` with its file reads off the cooperative pool.
    private func loadConfiguration() async throws -> (RelayConfiguration, [String]) {
        let command = self
        return try await NIOThreadPool.singleton.runIfActive { try command.effectiveConfiguration() }
    }

    /// The configuration: the file (if any) with every flag over it, read by one parser.
    func effectiveConfiguration() throws -> (RelayConfiguration, [String]) {
        var file: ConfigFile
        if let config {
            file = try ConfigFile.load(path: config, environment: environment, overrides: overrides())
        } else {
            file = try ConfigFile.parse(nil, file: "command line", environment: environment, overrides: overrides())
            // The built-in receiver (no --webhook) gets the payload options the flags give.
            if webhook == nil,
                let endpoint = try ConfigFile.parse(
                    nil,
                    file: "command line",
                    overrides: payloadOverrides()
                ).relay.endpoints.first
            {
                file.relay.payload = endpoint.payload
            }
        }
        if file.relay.server.listeners.isEmpty {
            throw ValidationError("\(config ?? "command line"): no listen entries, and no --socket or --listen given")
        }
        return (file.relay, file.warnings.filter { !$0.hasPrefix("no listen entries") })
    }

    /// The payload flags on a stand-in endpoint (to read them with the file's parser).
    private func payloadOverrides() -> [ConfigOverride] {
        var result = [
            ConfigOverride("--attachments", "endpoints[0].name", "local"),
            ConfigOverride("--attachments", "endpoints[0].url", "http://127.0.0.1/"),
        ]
        if let attachments { result.append(ConfigOverride("--attachments", "endpoints[0].attachments", attachments)) }
        if let inlineAttachmentLimit {
            result.append(
                ConfigOverride("--inline-attachment-limit", "endpoints[0].inline_limit", inlineAttachmentLimit)
            )
        }
        if omitRaw { result.append(ConfigOverride("--omit-raw", "endpoints[0].include_raw", "false")) }
        return result
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "lmtphook")
        let relay: Relay
        var metricsServer: MetricsServer?
        do {
            let (configuration, warnings) = try await loadConfiguration()
            for warning in warnings { logger.warning("configuration: \(warning)") }
            // Metrics first: swift-metrics objects bind to the backend that exists when they are made.
            let registry = configuration.metricsListen.map { _ in Self.bootstrapPrometheus() }
            relay = try await Relay(configuration: configuration, logger: logger)
            if let registry, let listen = configuration.metricsListen,
                case .tcp(let host, let port) = LMTPListenAddress.parseTCP(listen)
            {
                metricsServer = try await MetricsServer.start(
                    host: host,
                    port: port,
                    render: { registry.emitToBuffer() },
                    health: { relay.health() }
                )
                logger.info("metrics and health", metadata: ["url": "http://\(metricsServer!.address)/metrics"])
            }
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: relay)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        let reloader = Task { await reloadOnHangup(relay: relay, logger: logger) }
        defer { reloader.cancel() }
        do {
            try await group.run()
            await metricsServer?.stop()
        } catch {
            await metricsServer?.stop()
            logger.critical("cannot serve", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
    }

    /// Installs Prometheus as the swift-metrics backend (once per process) with buckets that fit
    /// webhook latencies and message sizes.
    static func bootstrapPrometheus() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30].map {
            .milliseconds(Int64($0 * 1000))
        }
        factory.defaultValueHistogramBuckets = [
            1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864,
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// SIGHUP: read the configuration file again and apply it; a bad file changes nothing.
    private func reloadOnHangup(relay: Relay, logger: Logger) async {
        for await _ in await UnixSignalsSequence(trapping: .sighup) {
            guard config != nil else {
                logger.notice("SIGHUP: nothing to reload (serve was started without --config)")
                continue
            }
            do {
                let (configuration, warnings) = try await loadConfiguration()
                let notes = relay.reload(configuration)
                for warning in warnings { logger.warning("configuration: \(warning)") }
                for note in notes { logger.warning("reload: \(note)") }
                logger.notice(
                    "configuration reloaded",
                    metadata: [
                        "endpoints": "\(configuration.endpoints.map(\.name).joined(separator: ","))",
                        "routes": "\(relay.routeTable.routes.count)",
                    ]
                )
            } catch {
                logger.error("reload refused, the running configuration stays", metadata: ["error": "\(error)"])
            }
        }
    }
}
