import Foundation
import LMTPHook
import LMTPHookTestSupport
import Targets
import Testing

@Suite("Configuration file")
struct ConfigFileTests {
    static let exampleEnvironment = [
        "ARCHIVE_TOKEN": "Bearer archive-token-4711",
        "LMTPHOOK_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "DISCORD_WEBHOOK_URL":
            "https://discord.com/api/webhooks/123456789012345678/abcdefghijklmnopqrstuvwxyz0123456789",
        "ZAMMAD_AUTH": "Token token=zammad-secret-0815",
    ]
    static let examplePath = Binary.packageRoot.appendingPathComponent("deploy/lmtphook.example.yaml").path

    @Test("the shipped example parses: five endpoints, four routes, secrets masked in the summary")
    func example() throws {
        let config = try ConfigFile.load(path: Self.examplePath, environment: Self.exampleEnvironment)
        #expect(config.relay.endpoints.map(\.name) == ["archive", "slack-alerts", "discord-ops", "zammad", "phone"])
        #expect(config.relay.routes?.routes.map(\.name) == ["support", "billing-phone", "alerts", "everything-else"])
        #expect(config.relay.server.listeners.count == 2)
        #expect(config.relay.spoolDirectory == "/var/lib/lmtphook/spool")
        #expect(config.relay.endpoints[2].url.hasSuffix("?wait=true"))
        #expect(config.relay.endpoints[0].signer.isEnabled)
        #expect(config.relay.endpoints[3].formatOptions.template != nil)
        #expect(config.relay.endpoints[1].rateLimit == RateLimit(requests: 1, periodMilliseconds: 1_000))
        for secret in Self.exampleEnvironment.values {
            #expect(!config.summary.contains(secret), "secret shown: \(secret)")
        }
        #expect(
            !config.summary.contains("XXXXXXXXXXXXXXXXXXXXXXXX")
                && !config.summary.contains("abcdefghijklmnopqrstuvwxyz0123456789")
        )
        #expect(config.summary.contains("support: address=support@example.com -> zammad, archive"))
        let table = try #require(config.relay.routes)
        #expect(table.resolve("billing+urgent@example.com")?.endpoints == ["phone"])
        #expect(table.resolve("zabbix-db1@monitoring.example.com")?.route == "alerts")
        #expect(table.resolve("someone@else.test")?.route == "everything-else")
    }

    @Test("secrets from files and environment variables")
    func secrets() throws {
        let config = try ConfigFile.parse(
            """
            endpoints:
              - name: a
                url: {env: HOOK_URL}
                headers:
                  Authorization: {file: auth.txt}
                  X-Api-Key: {env: API_KEY}
                secret_file: secret.txt
            """,
            environment: ["HOOK_URL": "https://example.net/hook", "API_KEY": "k-123"]
        ) { name in
            ["auth.txt": "Bearer from-file\n", "secret.txt": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"][name]
        }
        let endpoint = try #require(config.relay.endpoints.first)
        #expect(endpoint.url == "https://example.net/hook")
        #expect(endpoint.headers.map(\.value) == ["Bearer from-file", "k-123"])
        #expect(endpoint.signer.secretCount == 1)
        #expect(config.relay.routes?.hasCatchAll == true, "a single endpoint gets everything")
    }

    static let invalid: [(String, Int?, String)] = [
        // yaml, line, expected message fragment
        ("listen: [\n", 2, "not valid YAML"),
        ("lisen: []\n", 1, "unknown key 'lisen' (did you mean 'listen'?)"),
        ("listen:\n  - tcp: localhost\n", 2, "listen[0].tcp: must be HOST:PORT"),
        ("listen:\n  - socket: relative.sock\n", 2, "listen[0].socket: must be an absolute path"),
        ("listen:\n  - socket: /run/x.sock\n    mode: \"999\"\n", 3, "listen[0].mode: must be an octal mode"),
        ("limits:\n  max_message_size: lots\n", 2, "limits.max_message_size: must be a byte count"),
        ("limits:\n  max_recipients: 0\n", 2, "limits.max_recipients: must be between 1 and 100000"),
        ("spool:\n  max_age: soon\n  path: /x\n", 2, "spool.max_age: must be a duration"),
        ("endpoints:\n  - url: http://x/\n", 2, "endpoints[0]: needs a name"),
        ("endpoints:\n  - name: a\n", 2, "endpoints[0]: needs a url"),
        ("endpoints:\n  - name: a\n    url: ftp://x/\n", 3, "endpoints[0].url: must be an http:// or https:// URL"),
        (
            "endpoints:\n  - name: a\n    url: http://x/\n    format: telegram\n", 4,
            "endpoints[0].format: must be one of json, slack"
        ),
        (
            "endpoints:\n  - name: a\n    url: http://x/\n    formt: slack\n", 4,
            "unknown key 'formt' (did you mean 'format'?)"
        ),
        (
            "endpoints:\n  - name: a\n    url: http://x/\n  - name: a\n    url: http://y/\n", 4,
            "endpoint name 'a' is used twice"
        ),
        ("endpoints:\n  - name: a\n    url: http://x/\n    secret: nope\n", 4, "endpoints[0].secret:"),
        (
            "endpoints:\n  - name: a\n    url: http://x/\n    headers:\n      Authorization: {env: MISSING_VAR}\n", 5,
            "environment variable MISSING_VAR is not set"
        ),
        ("endpoints:\n  - name: a\n    url: http://x/\n    rate_limit: fast\n", 4, "rate_limit: must look like 1/s"),
        ("endpoints:\n  - name: a\n    url: http://x/\n    format: zulip\n", 2, "format zulip needs stream"),
        ("endpoints:\n  - name: a\n    url: http://x/\n    format: template\n", 2, "format template needs template"),
        (
            "endpoints:\n  - name: a\n    url: http://x/\n    format: template\n    template: '{\"a\": {{text}'\n", 5,
            "template error at line 1"
        ),
        (
            "endpoints:\n  - name: a\n    url: http://x/\n    format: template\n    template: '{\"a\": {{{text}}}}'\n",
            5, "did not produce valid JSON"
        ),
        ("endpoints:\n  - name: a\n    url: http://x/\n    template: 'x'\n", 4, "only applies to format template"),
        (
            "endpoints:\n  - name: a\n    url: http://x/\n  - name: b\n    url: http://y/\n", 1,
            "'routes' must say which recipients go where"
        ),
        (
            "endpoints:\n  - name: a\n    url: http://x/\nroutes:\n  - match: x@y.z\n    endpoint: b\n", 6,
            "no endpoint named 'b' (did you mean 'a'?)"
        ),
        ("endpoints:\n  - name: a\n    url: http://x/\nroutes:\n  - endpoint: a\n", 5, "routes[0]: needs match"),
        (
            "endpoints:\n  - name: a\n    url: http://x/\nroutes:\n  - match: {regex: \"([a\"}\n    endpoint: a\n", 5,
            "not a valid regular expression"
        ),
        (
            "endpoints:\n  - name: a\n    url: http://x/\nroutes:\n  - match: nobody\n    endpoint: a\n", 5,
            "must be an address"
        ),
        // Resource bounds and access control
        ("limits:\n  data_timeout: 0s\n", 2, "limits.data_timeout: must be at least 1s"),
        ("limits:\n  max_connections: 0\n", 2, "limits.max_connections: must be between 1 and 1000000"),
        ("limits:\n  max_header_fields: 3\n", 2, "limits.max_header_fields: must be between 16"),
        ("limits:\n  max_header_size: 100\n", 2, "max header bytes must be at least 1024"),
        ("limits:\n  memory_per_transaction: 1M\n", 2, "limits.memory_per_transaction: needs a spool"),
        ("limits:\n  min_data_rat: 500\n", 2, "unknown key 'min_data_rat' (did you mean 'min_data_rate'?)"),
        ("access:\n  clients: [10.0.0.0/33]\n", 2, "access.clients[0]: must be an IP address or network"),
        ("access:\n  private_webhooks: maybe\n", 2, "access.private_webhooks: must be allow or deny"),
        (
            "access:\n  private_webhooks: deny\nendpoints:\n  - name: a\n    url: http://127.0.0.1:8080/\n", 4,
            "127.0.0.1 is a private, loopback or link-local address"
        ),
        ("listen:\n  - socket: /run/x.sock\n    owner: \"\"\n", 3, "listen[0].owner: must not be empty"),
    ]

    @Test("a world-readable configuration file draws a warning; mode 0640 does not")
    func worldReadableWarning() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("lmtphook.yaml")
        writeFile(
            path,
            "endpoints: [{name: a, url: \"https://hooks.example.com/x\", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}]\n",
            mode: 0o644
        )
        #expect(try ConfigFile.load(path: path).warnings.contains { $0.contains("is world-readable") })
        chmod(path, 0o640)
        #expect(!(try ConfigFile.load(path: path).warnings.contains { $0.contains("world-readable") }))
        directory.remove()
    }

    @Test("resource bounds and access control from the file reach the server configuration")
    func boundsAndAccess() throws {
        let config = try ConfigFile.parse(
            """
            listen:
              - {socket: /run/lmtphook/lmtp.sock, mode: "0660", owner: lmtphook, group: postfix}
              - tcp: 10.0.0.5:2424
            limits:
              command_timeout: 2m
              data_timeout: 3m
              min_data_rate: 1K
              max_connections: 50
              max_connections_per_peer: 10
              max_header_size: 256K
              max_header_fields: 500
              memory_per_transaction: 512K
              max_deliveries: 8
              max_delivery_memory: 32M
              max_queued_deliveries: 100
            access:
              clients: [10.0.0.0/8, "2001:db8::/32"]
              private_webhooks: deny
            spool: {path: /var/lib/lmtphook/spool}
            endpoints: [{name: a, url: "https://hooks.example.com/x", max_in_flight: 3}]
            """,
            file: "bounds.yaml"
        )
        let server = config.relay.effectiveServer
        #expect(
            server.idleTimeout == .seconds(120) && server.dataTimeout == .seconds(180) && server.minimumDataRate == 1024
        )
        #expect(server.maxConnections == 50 && server.maxConnectionsPerPeer == 10)
        #expect(
            server.session.maxHeaderBytes == 262_144 && server.session.maxHeaderFields == 500
                && server.session.spillThreshold == 524_288
        )
        #expect(
            server.maxConcurrentDeliveries == 8 && server.maxDeliveryBytes == 32 * 1_048_576
                && server.maxQueuedDeliveries == 100
        )
        #expect(server.allowedClients?.map(\.description) == ["10.0.0.0/8", "2001:db8::/32"])
        #expect(server.unixSocketOwner == "lmtphook" && server.unixSocketGroup == "postfix")
        #expect(server.spillDirectory == "/var/lib/lmtphook/spool/incoming")
        #expect(config.relay.endpoints[0].denyPrivateAddresses && config.relay.endpoints[0].maxInFlight == 3)
        #expect(config.summary.contains("access: clients 10.0.0.0/8 2001:db8::/32, private_webhooks deny"))
    }

    @Test("each invalid configuration gets a precise message: file, line, key", arguments: invalid.indices)
    func invalidConfigurations(_ index: Int) {
        let (yaml, line, fragment) = Self.invalid[index]
        do {
            _ = try ConfigFile.parse(yaml, file: "bad.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)")
            if let line { #expect(error.line == line, "\(error.description)") }
            #expect(error.description.hasPrefix("bad.yaml"), "\(error.description)")
        }
    }
}
