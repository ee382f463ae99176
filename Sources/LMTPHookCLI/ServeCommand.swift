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
            With --config FILE, everything comes from the file (listeners, limits, spool, endpoints, routes); --socket and --listen add listeners.
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

    @Option(help: ArgumentHelp("File mode of the UNIX socket, octal.", valueName: "mode"))
    var socketMode: String = "0660"

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
            "Spool directory (created if missing). With a spool, messages the webhook cannot take now are queued durably and retried; without one they get 451 and the MTA retries.",
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
            "Time the MTA waits for the first webhook attempt before the message is queued instead (needs --spool).",
            valueName: "duration"
        )
    )
    var syncBudget: String = "5s"

    @Option(
        help: ArgumentHelp(
            "Transient failures in a row that open an endpoint's circuit: new mail is queued without an attempt and retries wait (needs --spool).",
            valueName: "n"
        )
    )
    var breakerFailures: Int = 5

    @Option(
        help: ArgumentHelp(
            "How long an open circuit stays open before one request may probe the endpoint again.",
            valueName: "duration"
        )
    )
    var breakerCooldown: String = "30s"

    @Option(
        help: ArgumentHelp(
            "Delays between retries, comma-separated; the last repeats (±20 % jitter).",
            valueName: "list"
        )
    )
    var retrySchedule: String = "5s,5m,30m,2h,5h,10h,14h,20h,24h"

    @Option(
        help: ArgumentHelp(
            "Queued messages older than this become dead letters (kept, never dropped).",
            valueName: "duration"
        )
    )
    var maxAge: String = "5d"

    @Option(
        help: ArgumentHelp(
            "Name announced in the greeting and LHLO reply (default: this host's name).",
            valueName: "name"
        )
    )
    var hostname: String?

    @Option(
        help: ArgumentHelp(
            "Largest message accepted, in bytes (suffixes K, M, G allowed); advertised as SIZE.",
            valueName: "size"
        )
    )
    var maxMessageSize: String = "50M"

    @Option(help: "Most recipients per transaction; more get 452 4.5.3.")
    var maxRecipients: Int = 1000

    @Option(help: ArgumentHelp("Seconds a connection may stay silent before 421 4.4.2.", valueName: "seconds"))
    var idleTimeout: Int = 300

    @Option(help: ArgumentHelp("Seconds allowed for one webhook request, connection included.", valueName: "seconds"))
    var webhookTimeout: Double = 30

    @Option(help: ArgumentHelp("Seconds allowed to connect to the webhook.", valueName: "seconds"))
    var connectTimeout: Double = 5

    @Option(
        help: ArgumentHelp(
            "Attachment contents in the payload: 'metadata' (names, sizes, hashes) or 'inline' (also base64 content up to --inline-attachment-limit).",
            valueName: "mode"
        )
    )
    var attachments: String = "metadata"

    @Option(
        help: ArgumentHelp(
            "Largest attachment sent inline with --attachments inline (suffixes K, M, G).",
            valueName: "size"
        )
    )
    var inlineAttachmentLimit: String = "1M"

    @Flag(help: "Send raw_base64 as null instead of the whole message.")
    var omitRaw = false

    @Option(help: "Webhook requests in flight at most (delivery threads).")
    var deliveryThreads: Int = 16

    @Option(help: ArgumentHelp("Seconds transactions in flight get to finish after SIGTERM.", valueName: "seconds"))
    var shutdownGrace: Int = 30

    @Option(
        help: ArgumentHelp(
            "Serve GET /metrics (Prometheus) and GET /healthz on this address (overrides metrics.listen in --config).",
            valueName: "host:port"
        )
    )
    var metricsListen: String?

    @OptionGroup var logging: LogOptions

    func validate() throws {
        if config != nil {
            if webhook != nil || spool != nil || !webhookSecrets.isEmpty || !webhookHeaders.isEmpty {
                throw ValidationError(
                    "with --config, endpoints and the spool are set in the file (--webhook, --spool, --webhook-secret, --webhook-header are refused)"
                )
            }
        } else if socket == nil && listen.isEmpty {
            throw ValidationError("give --socket PATH or --listen HOST:PORT (or both), or --config FILE")
        }
        for address in listen where LMTPListenAddress.parseTCP(address) == nil {
            throw ValidationError("--listen takes HOST:PORT or [IPv6]:PORT, got \(address)")
        }
        guard UInt32(socketMode, radix: 8).map({ $0 <= 0o777 }) == true else {
            throw ValidationError("--socket-mode must be octal like 0660, got \(socketMode)")
        }
        guard ByteSize.parse(maxMessageSize) != nil else {
            throw ValidationError("--max-message-size must be a byte count like 52428800 or 50M, got \(maxMessageSize)")
        }
        if let webhook {
            let lower = webhook.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                throw ValidationError("--webhook must be an http:// or https:// URL, got \(webhook)")
            }
        }
        guard (1...10_000).contains(breakerFailures) else {
            throw ValidationError("--breaker-failures must be between 1 and 10000, got \(breakerFailures)")
        }
        guard RetryPolicy.parseDuration(breakerCooldown) != nil else {
            throw ValidationError("--breaker-cooldown must be a duration like 30s, got \(breakerCooldown)")
        }
        guard RetryPolicy.parseDuration(syncBudget) != nil else {
            throw ValidationError("--sync-budget must be a duration like 5s, got \(syncBudget)")
        }
        guard RetryPolicy.parseDurations(retrySchedule) != nil else {
            throw ValidationError("--retry-schedule must be durations like 5s,5m,30m, got \(retrySchedule)")
        }
        guard RetryPolicy.parseDuration(maxAge) != nil else {
            throw ValidationError("--max-age must be a duration like 5d, got \(maxAge)")
        }
        for header in webhookHeaders where Self.parseHeader(header) == nil {
            throw ValidationError("--webhook-header must look like 'Name: value', got \(header)")
        }
        do { _ = try WebhookSigner(secrets: secrets()) } catch { throw ValidationError("\(error)") }
        guard attachments == "metadata" || attachments == "inline" else {
            throw ValidationError("--attachments must be metadata or inline, got \(attachments)")
        }
        guard ByteSize.parse(inlineAttachmentLimit) != nil else {
            throw ValidationError(
                "--inline-attachment-limit must be a byte count like 1M, got \(inlineAttachmentLimit)"
            )
        }
        guard webhookTimeout > 0, connectTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        guard (1...1024).contains(deliveryThreads) else { throw ValidationError("--delivery-threads must be 1...1024") }
        guard idleTimeout >= 1 else { throw ValidationError("--idle-timeout must be at least 1 second") }
        if let metricsListen, LMTPListenAddress.parseTCP(metricsListen) == nil {
            throw ValidationError("--metrics-listen takes HOST:PORT, got \(metricsListen)")
        }
        do {
            try sessionConfiguration().validate()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func sessionConfiguration() -> LMTPConfiguration {
        LMTPConfiguration(
            hostname: hostname ?? ConfigFile.systemHostname(),
            maxMessageSize: ByteSize.parse(maxMessageSize) ?? 0,
            maxRecipients: maxRecipients
        )
    }

    static func parseHeader(_ text: String) -> WebhookHeader? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let name = text[..<colon].trimmingCharacters(in: .whitespaces)
        let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
            return nil
        }
        return WebhookHeader(name, value)
    }

    func secrets() -> [String] {
        let environment =
            ProcessInfo.processInfo.environment["LMTPHOOK_WEBHOOK_SECRET"].map {
                $0.split(separator: " ").map(String.init)
            } ?? []
        return webhookSecrets + environment
    }

    func relayConfiguration() throws -> RelayConfiguration {
        var listeners: [LMTPListenAddress] = []
        if let socket { listeners.append(.unix(path: socket, mode: UInt32(socketMode, radix: 8) ?? 0o660)) }
        listeners += listen.compactMap(LMTPListenAddress.parseTCP)
        let server = LMTPServerConfiguration(
            listeners: listeners,
            session: sessionConfiguration(),
            idleTimeout: .seconds(idleTimeout),
            shutdownGracePeriod: .seconds(shutdownGrace)
        )
        let payload = PayloadOptions(
            attachments: attachments == "inline"
                ? .inline(maxBytes: ByteSize.parse(inlineAttachmentLimit) ?? 0) : .metadata,
            includeRaw: !omitRaw
        )
        let signer = try WebhookSigner(secrets: secrets())
        let headers = webhookHeaders.compactMap(Self.parseHeader)
        let endpoint = webhook.map {
            WebhookEndpoint(
                url: $0,
                connectTimeoutMilliseconds: Int(connectTimeout * 1000),
                totalTimeoutMilliseconds: Int(webhookTimeout * 1000),
                headers: headers,
                payload: payload,
                signer: signer
            )
        }
        let delivery = DeliverySettings(
            syncBudget: .milliseconds(RetryPolicy.parseDuration(syncBudget) ?? 5_000),
            retry: RetryPolicy(
                scheduleMilliseconds: RetryPolicy.parseDurations(retrySchedule) ?? RetryPolicy.defaultSchedule,
                maxAgeMilliseconds: RetryPolicy.parseDuration(maxAge) ?? 5 * 86_400_000
            ),
            breakerThreshold: breakerFailures,
            breakerCooldown: .milliseconds(RetryPolicy.parseDuration(breakerCooldown) ?? 30_000)
        )
        return RelayConfiguration(
            server: server,
            webhook: endpoint,
            payload: payload,
            spoolDirectory: spool,
            delivery: delivery,
            deliveryThreads: deliveryThreads
        )
    }

    /// ``effectiveConfiguration()`` with its file reads off the cooperative pool.
    private func loadConfiguration() async throws -> (RelayConfiguration, [String]) {
        let command = self
        return try await NIOThreadPool.singleton.runIfActive { try command.effectiveConfiguration() }
    }

    /// The configuration from `--config` (with `--socket`/`--listen` added), or from the flags.
    func effectiveConfiguration() throws -> (RelayConfiguration, [String]) {
        guard let config else {
            var configuration = try relayConfiguration()
            configuration.metricsListen = metricsListen
            return (configuration, [])
        }
        var file = try ConfigFile.load(path: config)
        if let metricsListen { file.relay.metricsListen = metricsListen }
        if let socket {
            file.relay.server.listeners.append(.unix(path: socket, mode: UInt32(socketMode, radix: 8) ?? 0o660))
        }
        file.relay.server.listeners += listen.compactMap(LMTPListenAddress.parseTCP)
        if file.relay.server.listeners.isEmpty {
            throw ValidationError("\(config): no listen entries, and no --socket or --listen given")
        }
        return (file.relay, file.warnings)
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
