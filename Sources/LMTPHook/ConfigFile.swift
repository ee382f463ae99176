import Delivery
import Foundation
import LMTPCore
import LMTPServer
import MailCore
import Spool
import Targets
import WebhookClient
import Yams

/// The configuration file (YAML): listeners, limits, spool, endpoints and routes. The complete,
/// commented example is `deploy/lmtphook.example.yaml`; every key is documented there.
package struct ConfigFile: Sendable {
    /// What `serve` runs with.
    package var relay: RelayConfiguration
    /// Things that are allowed but probably not meant (shown by `check-config` and logged at start).
    package var warnings: [String]
    /// The effective configuration with secrets masked, for `check-config`.
    package var summary: String

    /// Reads and validates `path`; `environment` supplies `{env: NAME}` secrets.
    package static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        overrides: [ConfigOverride] = []
    ) throws(ConfigError) -> ConfigFile {
        guard let bytes = FileContents.read(path: path) else {
            throw ConfigError(
                file: path,
                line: nil,
                key: "",
                message: "cannot read the file: \(String(cString: strerror(errno)))"
            )
        }
        let directory = (path as NSString).deletingLastPathComponent
        var config = try parse(
            String(decoding: bytes, as: UTF8.self),
            file: path,
            environment: environment,
            overrides: overrides
        ) { name in
            let full = name.hasPrefix("/") ? name : (directory.isEmpty ? name : directory + "/" + name)
            return FileContents.read(path: full).map { String(decoding: $0, as: UTF8.self) }
        }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o004 != 0 {
            config.warnings.append(
                "\(path) is world-readable; if it holds secrets, chmod 640 it (owner root, group lmtphook)"
            )
        }
        return config
    }

    /// Parses configuration text (`nil`: no file, only `overrides`), then the command-line
    /// `overrides` applied over it; `readFile` resolves `…_file` paths (relative to the config file).
    package static func parse(
        _ text: String?,
        file: String = "config",
        environment: [String: String] = [:],
        overrides: [ConfigOverride] = [],
        readFile: @escaping (String) -> String? = { _ in nil }
    ) throws(ConfigError) -> ConfigFile {
        var root = Node.mapping(Node.Mapping([]))
        if let text { root = try compose(text, file: file) }
        var flags: [(path: String, flag: String)] = []
        for override in overrides { flags.append((override.apply(to: &root), override.flag)) }
        var parser = ConfigParser(file: file, environment: environment, readFile: readFile)
        do {
            return try parser.parse(ConfigNode(node: root, path: "", file: file))
        } catch {
            // An error in a key a flag set names the flag (the longest path that covers the key).
            var error = error
            let covering = flags.filter {
                error.key == $0.path || error.key.hasPrefix($0.path + ".") || error.key.hasPrefix($0.path + "[")
            }
            if let match = covering.max(by: { $0.path.count < $1.path.count }) { error.flag = match.flag }
            throw error
        }
    }

    private static func compose(_ text: String, file: String) throws(ConfigError) -> Node {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigError(file: file, line: nil, key: "", message: "the file is empty")
            }
            root = node
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw ConfigError(
                file: file,
                line: Self.line(of: error),
                key: "",
                message: "not valid YAML: \(Self.problem(of: error))"
            )
        } catch {
            throw ConfigError(file: file, line: nil, key: "", message: "not valid YAML: \(error)")
        }
        return root
    }

    /// This host's name for the greeting and LHLO reply (`localhost` when it is unusable).
    package static func systemHostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty || name.utf8.count > 64 ? "localhost" : name
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    private static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
            .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        case .duplicatedKeysInMapping(let duplicates, _): return "duplicate keys \(duplicates.joined(separator: ", "))"
        default: return "\(error)"
        }
    }
}

/// Walks the YAML tree into a ``RelayConfiguration``.
struct ConfigParser {
    let file: String
    let environment: [String: String]
    let readFile: (String) -> String?
    var warnings: [String] = []
    var socketOwner: String?
    var socketGroup: String?
    var lines: [String] = []

    init(file: String, environment: [String: String], readFile: @escaping (String) -> String?) {
        self.file = file
        self.environment = environment
        self.readFile = readFile
    }

    mutating func parse(_ root: ConfigNode) throws(ConfigError) -> ConfigFile {
        let top = try root.mapping(allowed: [
            "listen", "hostname", "limits", "access", "spool", "delivery", "recipient_delimiter", "endpoints", "routes",
            "metrics",
        ])
        // LMTP side
        var listeners: [LMTPListenAddress] = []
        for item in try top["listen"]?.list() ?? [] { listeners.append(try listener(item)) }
        var session = LMTPConfiguration(hostname: try top["hostname"]?.nonEmptyString() ?? ConfigFile.systemHostname())
        var server = LMTPServerConfiguration(listeners: listeners)
        var shutdownGrace: Int64 = 30_000
        var memoryNode: ConfigNode?
        if let limits = try top["limits"]?.mapping(allowed: [
            "max_message_size", "max_recipients", "idle_timeout", "command_timeout", "data_timeout", "min_data_rate",
            "max_connections",
            "max_connections_per_peer", "max_header_size", "max_header_fields", "memory_per_transaction",
            "max_deliveries", "max_delivery_memory",
            "max_queued_deliveries",
        ]) {
            if let size = limits["max_message_size"] { session.maxMessageSize = try size.byteCount() }
            if let count = limits["max_recipients"] { session.maxRecipients = try count.int(in: 1...100_000) }
            for key in ["idle_timeout", "command_timeout", "data_timeout"] {
                guard let node = limits[key] else { continue }
                let value = try node.milliseconds()
                guard value >= 1_000 else { throw node.error("must be at least 1s") }
                if key == "data_timeout" {
                    server.dataTimeout = .milliseconds(value)
                } else {
                    server.idleTimeout = .milliseconds(value)
                }
            }
            if let rate = limits["min_data_rate"] { server.minimumDataRate = try rate.byteCount() }
            if let value = limits["max_connections"] { server.maxConnections = try value.int(in: 1...1_000_000) }
            if let value = limits["max_connections_per_peer"] {
                server.maxConnectionsPerPeer = try value.int(in: 0...1_000_000)
            }
            if let value = limits["max_header_size"] { session.maxHeaderBytes = try value.byteCount() }
            if let value = limits["max_header_fields"] { session.maxHeaderFields = try value.int(in: 16...1_000_000) }
            if let value = limits["memory_per_transaction"] {
                session.spillThreshold = try value.byteCount()
                memoryNode = value
            }
            if let value = limits["max_deliveries"] { server.maxConcurrentDeliveries = try value.int(in: 1...100_000) }
            if let value = limits["max_delivery_memory"] { server.maxDeliveryBytes = try value.byteCount() }
            if let value = limits["max_queued_deliveries"] {
                server.maxQueuedDeliveries = try value.int(in: 0...1_000_000)
            }
        }
        do { try session.validate() } catch {
            throw ConfigError(file: file, line: top["limits"]?.line, key: "limits", message: "\(error)")
        }
        server.session = session
        var privateWebhooks = true
        if let access = try top["access"]?.mapping(allowed: ["clients", "private_webhooks"]) {
            if let list = access["clients"] {
                var networks: [LMTPClientNetwork] = []
                for item in try list.list() {
                    let text = try item.nonEmptyString()
                    guard let network = LMTPClientNetwork(text) else {
                        throw item.error(
                            "must be an IP address or network like 10.0.0.0/8 or 2001:db8::/32, got '\(text)'"
                        )
                    }
                    networks.append(network)
                }
                server.allowedClients = networks
            }
            if let value = access["private_webhooks"] {
                switch try value.string() {
                case "allow": privateWebhooks = true
                case "deny": privateWebhooks = false
                case let other: throw value.error("must be allow or deny, got '\(other)'")
                }
            }
        }
        // Spool and delivery
        var settings = DeliverySettings()
        var spoolDirectory: String?
        var controlSocket: String?
        if let spool = try top["spool"]?.mapping(allowed: ["path", "retry_schedule", "max_age", "control_socket"]) {
            spoolDirectory = try spool["path"]?.nonEmptyString()
            controlSocket = try spool["control_socket"]?.nonEmptyString()
            if spoolDirectory == nil, let node = top["spool"] { throw node.error("needs path: DIR") }
            var schedule = settings.retry.scheduleMilliseconds
            if let list = spool["retry_schedule"] {
                schedule = []
                for item in try list.list() { schedule.append(try item.milliseconds()) }
                if schedule.isEmpty { throw list.error("must list at least one delay") }
            }
            let maxAge = try spool["max_age"]?.milliseconds() ?? settings.retry.maxAgeMilliseconds
            settings.retry = RetryPolicy(scheduleMilliseconds: schedule, maxAgeMilliseconds: maxAge)
        }
        var threads = 16
        var journal: String?
        if let delivery = try top["delivery"]?.mapping(allowed: [
            "threads", "sync_budget", "shutdown_grace", "retry_concurrency", "breaker_failures", "breaker_cooldown",
            "journal", "journal_window",
        ]) {
            if let value = delivery["threads"] { threads = try value.int(in: 1...1024) }
            if let value = delivery["sync_budget"] { settings.syncBudget = .milliseconds(try value.milliseconds()) }
            if let value = delivery["shutdown_grace"] { shutdownGrace = try value.milliseconds() }
            if let value = delivery["retry_concurrency"] { settings.retryConcurrency = try value.int(in: 1...1024) }
            if let value = delivery["breaker_failures"] { settings.breakerThreshold = try value.int(in: 1...10_000) }
            if let value = delivery["journal"] { journal = try value.nonEmptyString() }
            if let value = delivery["journal_window"] {
                settings.journalWindow = .milliseconds(try value.milliseconds())
            }
            if let value = delivery["breaker_cooldown"] {
                settings.breakerCooldown = .milliseconds(try value.milliseconds())
            }
        }
        var delimiters: Set<Character> = ["+"]
        if let value = top["recipient_delimiter"] { delimiters = Set(try value.string()) }
        // Endpoints
        var endpoints: [WebhookEndpoint] = []
        var endpointLines: [String: Int?] = [:]
        for item in try top["endpoints"]?.sequence() ?? [] {
            let endpoint = try self.endpoint(item)
            if endpointLines[endpoint.name] != nil {
                throw item.error("endpoint name '\(endpoint.name)' is used twice")
            }
            endpointLines[endpoint.name] = item.line
            endpoints.append(endpoint)
        }
        // Routes
        var routes: RouteTable?
        if let list = top["routes"] {
            var parsed: [Route] = []
            for item in try list.sequence() { parsed.append(try route(item, known: Set(endpoints.map(\.name)))) }
            if parsed.isEmpty { throw list.error("must list at least one route") }
            routes = RouteTable(routes: parsed, delimiters: delimiters)
            let used = Set(parsed.flatMap(\.endpoints))
            for endpoint in endpoints where !used.contains(endpoint.name) {
                warnings.append("endpoint '\(endpoint.name)' is not used by any route")
            }
            if !routes!.hasCatchAll {
                warnings.append("no catch-all route: recipients that match no route get 550 5.1.1 at RCPT")
            }
        } else if endpoints.count > 1 {
            throw root.error("with more than one endpoint, 'routes' must say which recipients go where")
        } else if !endpoints.isEmpty {
            routes = RouteTable(
                routes: [Route(name: "default", conditions: [RouteCondition()], endpoints: [endpoints[0].name])],
                delimiters: delimiters
            )
        }
        if listeners.isEmpty { warnings.append("no listen entries: give --socket or --listen to serve") }
        var metricsListen: String?
        if let metrics = try top["metrics"]?.mapping(allowed: ["listen"]), let listen = metrics["listen"] {
            let text = try listen.nonEmptyString()
            guard case .tcp = LMTPListenAddress.parseTCP(text) else {
                throw listen.error("must be HOST:PORT, e.g. 127.0.0.1:9464, got '\(text)'")
            }
            metricsListen = text
        }
        server.shutdownGracePeriod = .milliseconds(shutdownGrace)
        if spoolDirectory == nil, let node = memoryNode {
            throw node.error(
                "needs a spool: message bytes beyond this limit are written to the spool directory while they arrive"
            )
        }
        server.unixSocketOwner = socketOwner
        server.unixSocketGroup = socketGroup
        if !privateWebhooks {
            for index in endpoints.indices { endpoints[index].denyPrivateAddresses = true }
            for endpoint in endpoints {
                if let host = WebhookAddressGuard.literalHost(of: endpoint.url), WebhookAddressGuard.isPrivate(host) {
                    throw ConfigError(
                        file: file,
                        line: endpointLines[endpoint.name] ?? nil,
                        key: "endpoints",
                        message:
                            "endpoint '\(endpoint.name)': \(host) is a private, loopback or link-local address and access.private_webhooks is deny"
                    )
                }
            }
        }
        var relay = RelayConfiguration(
            server: server,
            endpoints: endpoints,
            routes: routes,
            spoolDirectory: spoolDirectory,
            delivery: settings,
            deliveryThreads: threads
        )
        relay.delivery.maxDeliveryMemory = server.maxDeliveryBytes  // one key, both sides
        relay.metricsListen = metricsListen
        relay.controlSocket = controlSocket
        relay.journal = journal
        relay.denyPrivateWebhookAddresses = !privateWebhooks
        return ConfigFile(relay: relay, warnings: warnings, summary: summary(relay, routes: routes))
    }

    private mutating func listener(_ item: ConfigNode) throws(ConfigError) -> LMTPListenAddress {
        if case .scalar = item.node {
            let text = try item.nonEmptyString()
            if text.hasPrefix("/") { return .unix(path: text, mode: 0o660) }
            guard let address = LMTPListenAddress.parseTCP(text) else {
                throw item.error("must be HOST:PORT, [IPv6]:PORT or an absolute socket path, got '\(text)'")
            }
            return address
        }
        let fields = try item.mapping(allowed: ["socket", "mode", "owner", "group", "tcp"])
        if let tcp = fields["tcp"] {
            let text = try tcp.nonEmptyString()
            guard let address = LMTPListenAddress.parseTCP(text) else {
                throw tcp.error("must be HOST:PORT or [IPv6]:PORT, got '\(text)'")
            }
            if fields["socket"] != nil { throw item.error("give socket or tcp, not both") }
            return address
        }
        guard let socket = fields["socket"] else { throw item.error("needs socket: PATH or tcp: HOST:PORT") }
        let path = try socket.nonEmptyString()
        guard path.hasPrefix("/") else { throw socket.error("must be an absolute path, got '\(path)'") }
        var mode: UInt32 = 0o660
        if let value = fields["mode"] {
            let text = try value.string()
            guard let parsed = UInt32(text, radix: 8), parsed <= 0o777 else {
                throw value.error("must be an octal mode like \"0660\" (quoted), got '\(text)'")
            }
            mode = parsed
        }
        if let owner = fields["owner"] { socketOwner = try owner.nonEmptyString() }
        if let group = fields["group"] { socketGroup = try group.nonEmptyString() }
        return .unix(path: path, mode: mode)
    }

    static let endpointKeys = [
        "name", "url", "format", "method", "headers", "secret", "secret_file", "secret_env", "timeout",
        "connect_timeout", "sync_budget",
        "attachments", "inline_limit", "include_raw", "rate_limit", "success", "template", "template_file",
        "content_type", "username", "channel",
        "stream", "topic", "priority", "max_in_flight",
    ]

    private mutating func endpoint(_ item: ConfigNode) throws(ConfigError) -> WebhookEndpoint {
        let fields = try item.mapping(allowed: Self.endpointKeys)
        guard let nameNode = fields["name"] else { throw item.error("needs a name") }
        let name = try nameNode.nonEmptyString()
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw nameNode.error("may contain letters, digits, '-', '_' and '.' only, got '\(name)'")
        }
        guard let urlNode = fields["url"] else { throw item.error("needs a url") }
        var url = try urlNode.secret(environment: environment, readFile: readFile).value  // chat URLs carry their token
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"),
            URLComponents(string: url)?.host?.isEmpty == false
        else {
            throw urlNode.error("must be an http:// or https:// URL with a host, got '\(url)'")
        }
        let format =
            TargetFormat(rawValue: try fields["format"]?.oneOf(TargetFormat.allCases.map(\.rawValue)) ?? "json")
            ?? .json
        if format == .discord { url = DiscordFormat.waitingURL(url) }
        let method = try fields["method"]?.oneOf(["POST", "PUT", "PATCH"]) ?? "POST"
        // Headers: name → value or {env}/{file}.
        var headers: [WebhookHeader] = []
        if let headerNode = fields["headers"] {
            guard case .mapping(let mapping) = headerNode.node else {
                throw headerNode.error("must be a mapping of header name to value")
            }
            for (key, value) in mapping {
                let headerName = key.string ?? ""
                let child = headerNode.child(headerName, value)
                guard !headerName.isEmpty,
                    headerName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") })
                else {
                    throw child.error("is not a valid header name")
                }
                let secret = try child.secret(environment: environment, readFile: readFile)
                guard !secret.value.contains("\r") && !secret.value.contains("\n") else {
                    throw child.error("a header value cannot contain a line break")
                }
                headers.append(WebhookHeader(headerName, secret.value))
            }
        }
        // Signing secrets.
        var secrets: [String] = []
        if let node = fields["secret"] {
            for entry in try node.list() {
                secrets.append(try entry.secret(environment: environment, readFile: readFile).value)
            }
        }
        if let node = fields["secret_file"] {
            secrets += try node.secretFile(readFile: readFile).value.split(whereSeparator: \.isWhitespace).map(
                String.init
            )
        }
        if let node = fields["secret_env"] {
            let variable = try node.nonEmptyString()
            guard let value = environment[variable] else {
                throw node.error("environment variable \(variable) is not set")
            }
            secrets += value.split(whereSeparator: \.isWhitespace).map(String.init)
        }
        let signer: WebhookSigner
        do { signer = try WebhookSigner(secrets: secrets) } catch {
            throw (fields["secret"] ?? fields["secret_file"] ?? fields["secret_env"] ?? item).error("\(error)")
        }
        // Payload.
        var payload = PayloadOptions()
        let inlineLimit = try fields["inline_limit"]?.byteCount() ?? 1024 * 1024
        switch try fields["attachments"]?.oneOf(["metadata", "inline", "omit"]) ?? "metadata" {
        case "inline": payload.attachments = .inline(maxBytes: inlineLimit)
        case "omit": payload.attachments = .omit
        default: payload.attachments = .metadata
        }
        if let raw = fields["include_raw"] {
            payload.includeRaw = try raw.bool()
        } else {
            payload.includeRaw = format == .json || format == .template
        }
        // Format options.
        var options = FormatOptions()
        options.username = try fields["username"]?.nonEmptyString()
        options.channel = try fields["channel"]?.nonEmptyString()
        options.stream = try fields["stream"]?.nonEmptyString()
        options.topic = try fields["topic"]?.nonEmptyString()
        if let priority = fields["priority"] {
            options.priority = try priority.int(in: format == .ntfy ? 1...5 : 0...10)
        }
        if format == .zulip && options.stream == nil { throw item.error("format zulip needs stream: NAME") }
        if format == .ntfy && options.topic == nil {
            throw item.error(
                "format ntfy needs topic: NAME (lmtphook uses ntfy's JSON publish to the server's root URL)"
            )
        }
        if format == .template {
            let contentType = try fields["content_type"]?.nonEmptyString() ?? "application/json"
            let source: String
            let sourceNode: ConfigNode
            if let inline = fields["template"] {
                source = try inline.nonEmptyString()
                sourceNode = inline
            } else if let path = fields["template_file"] {
                let name = try path.nonEmptyString()
                guard let text = readFile(name) else { throw path.error("cannot read \(name)") }
                source = text
                sourceNode = path
            } else {
                throw item.error("format template needs template: TEXT or template_file: PATH")
            }
            do {
                let template = try MessageTemplate(source: source, contentType: contentType)
                // a template that cannot render valid output is refused now
                _ = try template.render(SampleMessage.renderInput())
                options.template = template
            } catch {
                throw sourceNode.error("\(error)")
            }
        } else {
            for key in ["template", "template_file", "content_type"] where fields[key] != nil {
                throw fields[key]!.error("only applies to format template")
            }
        }
        // Timeouts, rate, success.
        let timeout = try fields["timeout"]?.milliseconds() ?? 30_000
        let connectTimeout = try fields["connect_timeout"]?.milliseconds() ?? 5_000
        guard timeout > 0 else { throw fields["timeout"]!.error("must be positive") }
        guard connectTimeout > 0 else { throw fields["connect_timeout"]!.error("must be positive") }
        let syncBudget = try fields["sync_budget"]?.milliseconds()
        var rateLimit: RateLimit?
        if let node = fields["rate_limit"] {
            let text = try node.string()
            guard let parsed = RateLimit.parse(text) else {
                throw node.error("must look like 1/s, 5/2s or 30/m, got '\(text)'")
            }
            rateLimit = parsed
        }
        var rule = format.defaultSuccessRule
        if let node = fields["success"] {
            let success = try node.mapping(allowed: ["status", "body", "json_field"])
            rule = SuccessRule()
            if let statuses = success["status"] {
                var set = Set<Int>()
                for status in try statuses.list() { set.insert(try status.int(in: 200...299)) }
                rule.statuses = set
            }
            rule.body = try success["body"]?.string()
            rule.jsonField = try success["json_field"]?.nonEmptyString()
        }
        var endpoint = WebhookEndpoint(
            name: name,
            url: url,
            method: method,
            connectTimeoutMilliseconds: Int(connectTimeout),
            totalTimeoutMilliseconds: Int(timeout),
            headers: headers,
            payload: payload,
            signer: signer,
            format: format,
            formatOptions: options,
            successRule: rule,
            rateLimit: rateLimit,
            syncBudget: syncBudget.map { .milliseconds($0) }
        )
        endpoint.maxInFlight = try fields["max_in_flight"]?.int(in: 1...1024)
        return endpoint
    }

    private func route(_ item: ConfigNode, known: Set<String>) throws(ConfigError) -> Route {
        let fields = try item.mapping(allowed: ["name", "match", "endpoint", "endpoints"])
        let index = item.path.split(separator: "[").last.map { String($0.dropLast()) } ?? "?"
        let name = try fields["name"]?.nonEmptyString() ?? "route-\(index)"
        guard let match = fields["match"] else {
            throw item.error("needs match: (an address, a condition, a list of them, or \"*\")")
        }
        var conditions: [RouteCondition] = []
        for entry in try match.list() { conditions.append(try condition(entry)) }
        if conditions.isEmpty { throw match.error("must not be an empty list") }
        var targets: [String] = []
        if let one = fields["endpoint"] { targets.append(try one.nonEmptyString()) }
        if let many = fields["endpoints"] {
            for entry in try many.list() { targets.append(try entry.nonEmptyString()) }
        }
        if targets.isEmpty { throw item.error("needs endpoint: NAME or endpoints: [NAME, …]") }
        for target in targets where !known.contains(target) {
            let node = fields["endpoint"] ?? fields["endpoints"] ?? item
            let suggestion = ConfigNode.closest(to: target, in: Array(known)).map { " (did you mean '\($0)'?)" } ?? ""
            throw node.error("no endpoint named '\(target)'\(suggestion)")
        }
        return Route(name: name, conditions: conditions, endpoints: targets)
    }

    private func condition(_ entry: ConfigNode) throws(ConfigError) -> RouteCondition {
        if case .scalar = entry.node {
            let text = try entry.nonEmptyString()
            if text == "*" { return RouteCondition() }
            if text.hasPrefix("@") { return RouteCondition(domain: String(text.dropFirst())) }
            guard text.contains("@") else {
                throw entry.error(
                    "must be an address (user@example.com), a domain (@example.com), \"*\" or a mapping, got '\(text)'"
                )
            }
            return RouteCondition(address: text)
        }
        let fields = try entry.mapping(allowed: ["address", "domain", "local", "tag", "regex"])
        if fields.isEmpty { throw entry.error("an empty condition: use \"*\" for a catch-all") }
        var regex: AddressPattern?
        if let node = fields["regex"] {
            let pattern = try node.nonEmptyString()
            do { regex = try AddressPattern(pattern) } catch {
                throw node.error("not a valid regular expression: \(error)")
            }
        }
        return RouteCondition(
            address: try fields["address"]?.nonEmptyString(),
            domain: try fields["domain"]?.nonEmptyString(),
            localPart: try fields["local"]?.nonEmptyString(),
            tag: try fields["tag"]?.nonEmptyString(),
            regex: regex
        )
    }

    // MARK: - check-config output

    private func summary(_ relay: RelayConfiguration, routes: RouteTable?) -> String {
        var out: [String] = []
        let session = relay.server.session
        out.append("listen:")
        for listener in relay.server.listeners {
            switch listener {
            case .unix(let path, let mode): out.append("  unix \(path) mode \(String(mode, radix: 8))")
            case .tcp(let host, let port): out.append("  tcp \(host):\(port)")
            }
        }
        out.append("hostname: \(session.hostname)")
        let server = relay.server
        out.append(
            "limits: max_message_size \(session.maxMessageSize), max_recipients \(session.maxRecipients), command_timeout \(server.idleTimeout), data_timeout \(server.dataTimeout), min_data_rate \(server.minimumDataRate) B/s"
        )
        out.append(
            "        max_connections \(server.maxConnections), per_peer \(server.maxConnectionsPerPeer), max_header_size \(session.maxHeaderBytes), max_header_fields \(session.maxHeaderFields), memory_per_transaction \(relay.spoolDirectory == nil ? "unbounded (no spool)" : String(session.spillThreshold ?? 1_048_576)), max_deliveries \(server.maxConcurrentDeliveries), max_delivery_memory \(server.maxDeliveryBytes), max_queued_deliveries \(server.maxQueuedDeliveries)"
        )
        out.append(
            "access: clients \(server.allowedClients.map { $0.map(\.description).joined(separator: " ") } ?? "any"), private_webhooks \(relay.denyPrivateWebhookAddresses ? "deny" : "allow")"
        )
        if let spool = relay.spoolDirectory {
            out.append(
                "spool: \(spool), retry_schedule \(relay.delivery.retry.scheduleMilliseconds.map { "\($0 / 1000)s" }.joined(separator: ",")), max_age \(relay.delivery.retry.maxAgeMilliseconds / 1000)s"
            )
        } else {
            out.append("spool: none (transient failures get 451 and the MTA retries)")
        }
        out.append("delivery: threads \(relay.deliveryThreads), sync_budget \(relay.delivery.syncBudget)")
        out.append("metrics: \(relay.metricsListen.map { "http://\($0)/metrics and /healthz" } ?? "off")")
        out.append("endpoints:")
        if relay.endpoints.isEmpty {
            out.append("  (none: the built-in local receiver prints each document on stdout)")
        }
        for endpoint in relay.endpoints {
            out.append(
                "  \(endpoint.name): \(endpoint.method) \(EndpointMasking.url(endpoint.url)) format \(endpoint.format.rawValue)"
            )
            for header in endpoint.headers {
                out.append("    header \(header.name): \(EndpointMasking.header(header))")
            }
            if endpoint.signer.isEnabled {
                out.append("    signed (Standard Webhooks), \(endpoint.signer.secretCount) secret(s) ****")
            }
            var details =
                "    timeout \(endpoint.totalTimeoutMilliseconds) ms, connect \(endpoint.connectTimeoutMilliseconds) ms"
            if let budget = endpoint.syncBudget { details += ", sync_budget \(budget)" }
            if let rate = endpoint.rateLimit {
                details += ", rate \(rate.requests) per \(Double(rate.periodMilliseconds) / 1000) s"
            }
            out.append(details)
            let attachments: String
            switch endpoint.payload.attachments {
            case .metadata: attachments = "metadata"
            case .inline(let limit): attachments = "inline up to \(limit) bytes"
            case .omit: attachments = "omit"
            }
            out.append(
                "    attachments \(attachments), raw \(endpoint.payload.includeRaw ? "included" : "omitted"), success: \(endpoint.successRule.summary)"
            )
        }
        out.append("routes (first match wins):")
        if let routes {
            for route in routes.routes {
                out.append(
                    "  \(route.name): \(route.conditions.map(\.summary).joined(separator: " | ")) -> \(route.endpoints.joined(separator: ", "))"
                )
            }
            if !routes.hasCatchAll { out.append("  (anything else: 550 5.1.1 at RCPT)") }
            out.append("recipient_delimiter: \(String(routes.delimiters.sorted()))")
        } else {
            out.append("  default: * -> local receiver")
        }
        return out.joined(separator: "\n")
    }
}
