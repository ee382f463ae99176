import Delivery
import Foundation
import LMTPHook
import LMTPHookTestSupport
import Testing

@testable import LMTPHookCLI

/// One settings model: `serve`'s flags are overrides of the configuration file's keys, read by
/// the same parser — the same defaults, the same validation, the flag named in errors.
@Suite("Settings: flags over file keys")
struct SettingsModelTests {
    static func configuration(_ arguments: [String]) throws -> RelayConfiguration {
        try ServeCommand.parse(arguments).effectiveConfiguration().0
    }

    @Test("with --config, each flag overrides its key and the file keeps the rest (before, the flags were ignored)")
    func flagsOverrideTheFile() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("lmtphook.yaml")
        writeFile(
            path,
            """
            listen: [{tcp: "127.0.0.1:0"}]
            limits: {max_recipients: 50, max_message_size: 10M}
            spool: {path: "\(directory.file("spool"))", retry_schedule: [1m, 1h], max_age: 2d}
            delivery: {sync_budget: 5s, breaker_failures: 7, retry_concurrency: 3, threads: 8}
            endpoints: [{name: inbound, url: "http://127.0.0.1:9/"}]
            """
        )
        let relay = try Self.configuration([
            "--config", path, "--sync-budget", "300ms", "--breaker-failures", "9", "--max-recipients", "20",
            "--retry-schedule", "10s,20s", "--delivery-threads", "4", "--spool", directory.file("other"),
        ])
        #expect(relay.delivery.syncBudget == .milliseconds(300))
        #expect(relay.delivery.breakerThreshold == 9)
        #expect(relay.delivery.retryConcurrency == 3, "from the file")
        #expect(relay.delivery.retry.scheduleMilliseconds == [10_000, 20_000])
        #expect(relay.delivery.retry.maxAgeMilliseconds == 2 * 86_400_000, "from the file")
        #expect(relay.deliveryThreads == 4)
        #expect(relay.server.session.maxRecipients == 20)
        #expect(relay.server.session.maxMessageSize == 10 * 1024 * 1024, "from the file")
        #expect(relay.spoolDirectory == directory.file("other"))
        #expect(relay.endpoints.map(\.name) == ["inbound"])
    }

    @Test("without a file, the flags' defaults are the file keys' defaults (declared once)")
    func defaultsDeclaredOnce() throws {
        let fromFlags = try Self.configuration(["--listen", "127.0.0.1:0", "--webhook", "http://127.0.0.1:9/"])
        let fromFile = try ConfigFile.parse(
            """
            listen: [{tcp: "127.0.0.1:0"}]
            endpoints: [{name: default, url: "http://127.0.0.1:9/"}]
            """
        ).relay
        #expect(fromFlags.delivery == fromFile.delivery)
        #expect(fromFlags.deliveryThreads == fromFile.deliveryThreads)
        #expect(fromFlags.server.session.maxMessageSize == fromFile.server.session.maxMessageSize)
        #expect(fromFlags.server.session.maxRecipients == fromFile.server.session.maxRecipients)
        #expect(fromFlags.server.idleTimeout == fromFile.server.idleTimeout)
        #expect(fromFlags.server.shutdownGracePeriod == fromFile.server.shutdownGracePeriod)
        let (flagEndpoint, fileEndpoint) = (
            try #require(fromFlags.endpoints.first), try #require(fromFile.endpoints.first)
        )
        #expect(flagEndpoint.totalTimeoutMilliseconds == fileEndpoint.totalTimeoutMilliseconds)
        #expect(flagEndpoint.connectTimeoutMilliseconds == fileEndpoint.connectTimeoutMilliseconds)
        #expect(flagEndpoint.payload == fileEndpoint.payload)
    }

    @Test("a relative --socket path is taken from the working directory, as before")
    func relativeSocketPath() throws {
        let relay = try Self.configuration(["--socket", "relative/lmtp.sock"])
        #expect(
            relay.server.listeners == [
                .unix(path: FileManager.default.currentDirectoryPath + "/relative/lmtp.sock", mode: 0o660)
            ]
        )
    }

    @Test(
        "a bad flag value is refused by the file's validation, naming the flag and the key",
        arguments: [
            (["--sync-budget", "soon"], "--sync-budget (delivery.sync_budget): must be a duration"),
            (["--breaker-failures", "0"], "--breaker-failures (delivery.breaker_failures):"),
            (["--spool", "/tmp/x", "--retry-schedule", "5s,,x"], "--retry-schedule (spool.retry_schedule[1]):"),
            (["--max-age", "2d"], "--max-age is a spool setting: give --spool DIR with it"),
            (["--delivery-threads", "many"], "--delivery-threads (delivery.threads):"),
            (
                ["--webhook", "http://127.0.0.1:9/", "--webhook-timeout", "x"],
                "--webhook-timeout (endpoints[0].timeout):"
            ),
            (["--metrics-listen", "nowhere"], "--metrics-listen (metrics.listen): must be HOST:PORT"),
            (["--attachments", "all"], "--attachments (endpoints[0].attachments): must be one of"),
        ]
    )
    func badFlagValues(_ arguments: [String], _ message: String) {
        #expect {
            _ = try ServeCommand.parse(["--listen", "127.0.0.1:0"] + arguments)
        } throws: { error in
            let text = ServeCommand.message(for: error)
            return text.contains(message)
                ? true
                : {
                    Issue.record("\(text)")
                    return false
                }()
        }
    }

    @Test(
        "SIGHUP's reload applies the delivery settings (sync budget, retry schedule, breaker) and names each setting that needs a restart"
    )
    func reloadAppliesDeliverySettings() async throws {
        let yaml = { (budget: String, threads: Int) in
            """
            delivery: {sync_budget: \(budget), breaker_failures: 3, threads: \(threads)}
            spool: {retry_schedule: [1m], path: "/tmp/unused"}
            endpoints: [{name: inbound, url: "http://127.0.0.1:9/"}]
            """
        }
        var first = try ConfigFile.parse(yaml("5s", 8)).relay
        first.spoolDirectory = nil
        let relay = try await RunningRelay.start(first)
        #expect(relay.relay.delivery.settings.syncBudget == .seconds(5))
        var second = try ConfigFile.parse(yaml("250ms", 4)).relay
        second.spoolDirectory = nil
        second.server = relay.relay.configuration.server  // the test's own listeners: unchanged
        let notes = relay.relay.reload(second)
        #expect(relay.relay.delivery.settings.syncBudget == .milliseconds(250))
        #expect(relay.relay.delivery.settings.breakerThreshold == 3)
        #expect(notes == ["delivery.threads changed: needs a restart to take effect"], "\(notes)")
        #expect(!notes.contains { $0.contains("sync_budget") }, "applied, not deferred: \(notes)")
        try await relay.stop()
    }
}
