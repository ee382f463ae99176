import Foundation
import LMTPHook
import LMTPHookTestSupport
import Spool
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What an operator runs: metrics and health over HTTP, log lines, and every file in deploy/.
@Suite("Operations: metrics, health, logs, deploy files", .serialized)
struct OperationsTests {
    static let deploy = Binary.packageRoot.appendingPathComponent("deploy").path

    static func get(_ url: String) async -> (status: Int32, body: String) {
        let result = await runProcess("/usr/bin/curl", ["-s", "-o", "-", "-w", "\n%{http_code}", url])
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int32(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// A `--log-format json` log: its text, and the lines that are JSON objects of strings.
    static func jsonLog(_ path: String) -> (text: String, lines: [[String: String]]) {
        let text = String(decoding: readFile(path) ?? [], as: UTF8.self)
        let lines = text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
        return (text, lines)
    }

    static func value(_ metrics: String, _ series: String) -> Double? {
        metrics.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap {
            Double($0.split(separator: " ").last ?? "")
        }
    }

    @Test("serve: /metrics counts what happened, /healthz follows the spool, log lines are JSON without bodies")
    func metricsHealthAndLogs() async throws {
        let sink = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let socketPath = directory.file("lmtp.sock")
        let spoolPath = directory.file("spool")
        let port = unusedTCPPort()
        let logPath = directory.file("serve.log")
        let process = try await ServeProcess.start(
            [
                "--socket", socketPath, "--spool", spoolPath, "--webhook", sink.url, "--metrics-listen",
                "127.0.0.1:\(port)", "--log-format", "json", "--log-level", "info",
            ],
            socket: socketPath,
            stderr: logPath
        )
        defer { if process.isRunning { process.terminate() } }

        let replies = try await blocking {
            try LMTPClientConnection(unixPath: socketPath).deliver(
                from: "a@example.org",
                to: ["b@example.test", "c@example.test"],
                message: sampleMessage(body: "SECRET-BODY-TEXT\r\n")
            )
        }
        #expect(replies.map(\.code) == [250, 250])
        let metrics = await Self.get("http://127.0.0.1:\(port)/metrics")
        #expect(metrics.status == 200)
        #expect(Self.value(metrics.body, "lmtphook_lmtp_transactions_total") == 1)
        #expect(Self.value(metrics.body, "lmtphook_lmtp_connections_total") == 1)
        #expect(Self.value(metrics.body, "lmtphook_recipients_total{status=\"delivered\"}") == 2)
        #expect(
            Self.value(
                metrics.body,
                "lmtphook_webhook_requests_total{endpoint=\"default\",outcome=\"delivered\",kind=\"sync\"}"
            ) == 1
        )
        #expect(Self.value(metrics.body, "lmtphook_lmtp_replies_total{class=\"2xx\"}") ?? 0 >= 6)
        #expect(Self.value(metrics.body, "lmtphook_webhook_request_duration_seconds_count{endpoint=\"default\"}") == 1)
        #expect(metrics.body.contains("# TYPE lmtphook_webhook_request_duration_seconds histogram"))

        // Readiness follows the spool: take its tmp/ away, then give it back.
        #expect(await Self.get("http://127.0.0.1:\(port)/healthz").status == 200)
        #expect(rename("\(spoolPath)/tmp", "\(spoolPath)/tmp.away") == 0)
        var health = await Self.get("http://127.0.0.1:\(port)/healthz")
        let unready = ContinuousClock.now + .seconds(15)
        while health.status == 200 && ContinuousClock.now < unready {
            try await Task.sleep(for: .milliseconds(250))
            health = await Self.get("http://127.0.0.1:\(port)/healthz")
        }
        #expect(health.status == 503 && health.body.contains("not writable"), "\(health)")
        #expect(Self.value(await Self.get("http://127.0.0.1:\(port)/metrics").body, "lmtphook_spool_writable") == 0)
        #expect(rename("\(spoolPath)/tmp.away", "\(spoolPath)/tmp") == 0)
        let ready = ContinuousClock.now + .seconds(15)
        while health.status != 200 && ContinuousClock.now < ready {
            try await Task.sleep(for: .milliseconds(250))
            health = await Self.get("http://127.0.0.1:\(port)/healthz")
        }
        #expect(health.status == 200, "ready again once the spool is back")
        #expect(await Self.get("http://127.0.0.1:\(port)/other").status == 404)

        try await process.stop()
        let (log, lines) = Self.jsonLog(logPath)
        #expect(lines.count == log.split(separator: "\n").count, "every line is a JSON object of strings")
        let deliveries = lines.filter { $0["msg"] == "delivery" }
        #expect(deliveries.count == 2, "one line per recipient")
        for line in deliveries {
            for key in [
                "ts", "level", "id", "queue_id", "rcpt", "endpoint", "status", "http", "attempt", "delay", "size",
            ] { #expect(line[key] != nil, "\(key) in \(line)") }
            #expect(line["status"] == "delivered" && line["http"] == "200")
        }
        #expect(!log.contains("SECRET-BODY-TEXT"), "no message bodies in logs")
        await sink.stop()
    }

    @Test(
        "serve: an entry damaged on disk is quarantined at retry time, counted in dead_letters_total{reason=damaged} and logged"
    )
    func damagedEntryMetricAndLog() async throws {
        let sink = try await RecordingSink.start()
        sink.answer(503)
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let socketPath = directory.file("lmtp.sock")
        let spoolPath = directory.file("spool")
        let port = unusedTCPPort()
        let logPath = directory.file("serve.log")
        let process = try await ServeProcess.start(
            [
                "--socket", socketPath, "--spool", spoolPath, "--webhook", sink.url, "--retry-schedule", "1s",
                "--metrics-listen", "127.0.0.1:\(port)",
                "--log-format", "json",
            ],
            socket: socketPath,
            stderr: logPath
        )
        defer { if process.isRunning { process.terminate() } }
        let replies = try await blocking {
            try LMTPClientConnection(unixPath: socketPath).deliver(
                from: "a@example.org",
                to: ["b@example.test"],
                message: sampleMessage(subject: "to be damaged")
            )
        }
        #expect(replies.map(\.code) == [250])
        let spool = try Spool(path: spoolPath)
        let id = try #require(spool.ids().first)
        let path = "\(spoolPath)/queue/\(id).msg"
        var bytes = try #require(readFile(path))
        // a byte of the body: the checksum no longer matches
        bytes[try #require(bytes.lastIndex(of: UInt8(ascii: "B")))] = UInt8(ascii: "X")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let quarantined = "\(spoolPath)/quarantine/\(id).msg"
        let deadline = ContinuousClock.now + .seconds(20)
        while !FileManager.default.fileExists(atPath: quarantined) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(FileManager.default.fileExists(atPath: quarantined), "moved to quarantine/")
        #expect(spool.ids().isEmpty)
        let metrics = await Self.get("http://127.0.0.1:\(port)/metrics").body
        #expect(
            Self.value(metrics, "lmtphook_dead_letters_total{endpoint=\"-\",reason=\"damaged\"}") == 1,
            "\(metrics.split(separator: "\n").filter { $0.contains("dead_letters") })"
        )
        try await process.stop()
        let lines = Self.jsonLog(logPath).lines
        let damaged = lines.filter { $0["msg"] == "damaged spool entry moved to quarantine/; it will not be retried" }
        #expect(
            damaged.count == 1 && damaged.first?["level"] == "error" && damaged.first?["spool_id"] == id,
            "\(lines)"
        )
        #expect(sink.requests.count == 1, "the damaged entry was never sent again")
        await sink.stop()
    }

    @Test("the Grafana dashboard queries only metrics that lmtphook exports")
    func dashboardMetricsExist() async throws {
        let dashboard = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(Self.deploy)/grafana/lmtphook-dashboard.json"))
            ) as? [String: Any]
        )
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let expressions = panels.flatMap {
            ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String }
        }
        #expect(expressions.count >= 10)
        var names = Set<String>()
        for expression in expressions {
            var rest = Substring(expression)
            while let range = rest.range(of: "lmtphook_") {
                let name = rest[range.lowerBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                names.insert(String(name))
                rest = rest[name.endIndex...]
            }
        }
        let sink = try await RecordingSink.start()
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let socketPath = directory.file("lmtp.sock")
        let port = unusedTCPPort()
        let process = try await ServeProcess.start(
            [
                "--socket", socketPath, "--spool", directory.file("spool"), "--webhook", sink.url, "--metrics-listen",
                "127.0.0.1:\(port)", "--log-level", "error",
            ],
            socket: socketPath
        )
        defer { if process.isRunning { process.terminate() } }
        _ = try await blocking {
            try LMTPClientConnection(unixPath: socketPath).deliver(
                from: "a@example.org",
                to: ["b@example.test"],
                message: sampleMessage()
            )
        }
        var exported = await Self.get("http://127.0.0.1:\(port)/metrics").body
        let monitored = ContinuousClock.now + .seconds(12)
        // the first monitor pass
        while !exported.contains("lmtphook_spool_entries") && ContinuousClock.now < monitored {
            try await Task.sleep(for: .milliseconds(200))
            exported = await Self.get("http://127.0.0.1:\(port)/metrics").body
        }
        for name in names.sorted() {
            #expect(
                exported.contains("\n\(name){") || exported.contains("\n\(name) ") || exported.hasPrefix(name),
                "dashboard uses \(name), which /metrics does not export"
            )
        }
        try await process.stop()
        await sink.stop()
    }

    @Test(
        "the systemd unit passes systemd-analyze verify and a hardening threshold",
        .requires(.program("/usr/bin/systemd-analyze"))
    )
    func systemdUnit() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let unit = String(decoding: readFile("\(Self.deploy)/systemd/lmtphook.service") ?? [], as: UTF8.self)
        #expect(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))
        #expect(
            unit.contains("StateDirectory=lmtphook") && unit.contains("RuntimeDirectory=lmtphook")
                && unit.contains("ProtectSystem=strict")
        )
        #expect(unit.contains("NoNewPrivileges=yes") && unit.contains("Restart=on-failure"))
        // Point it at the binary that exists here (verify checks that ExecStart is executable).
        writeFile(
            directory.file("lmtphook.service"),
            unit.replacingOccurrences(of: "/usr/local/bin/lmtphook", with: try Binary.require())
        )
        let verify = await runProcess("/usr/bin/systemd-analyze", ["verify", directory.file("lmtphook.service")])
        #expect(verify.status == 0 && verify.output.isEmpty, "\(verify.output)")
        let security = await runProcess(
            "/usr/bin/systemd-analyze",
            ["security", "--offline=yes", "--threshold=25", "--no-pager", directory.file("lmtphook.service")]
        )
        #expect(security.status == 0, "exposure above 2.5 (of 10): \(security.output.suffix(600))")
    }

    /// Built by the README's test command (`swift build --product generate-manual`).
    static let generateManual = Binary.packageRoot.appendingPathComponent(".build/debug/generate-manual").path

    @Test(
        "the committed man page deploy/man/lmtphook.8 is what generate-manual makes now",
        .requires(.program(generateManual))
    )
    func manPageIsCurrent() async throws {
        let output = TemporaryDirectory()
        defer { output.remove() }
        let generated = await runProcess(
            Self.generateManual,
            [try Binary.require(), "--section", "8", "--date", "2026-12-02", "--output-directory", output.path]
        )
        #expect(generated.status == 0, "\(generated.output)")
        let fresh = try #require(readFile(output.file("lmtphook.8")))
        let committed = try #require(readFile("\(Self.deploy)/man/lmtphook.8"))
        let current = fresh == committed  // (not inside #expect: it would print both pages byte by byte)
        #expect(current, "deploy/man/lmtphook.8 is out of date: run deploy/man/generate.sh")
        let page = String(decoding: committed, as: UTF8.self)
        #expect(page.contains(".Dt LMTPHOOK 8") && page.contains("serve") && page.contains("sync-budget"))
    }

    @Test("install.sh stages the binary, configuration, spool, socket directory and unit")
    func installScript() async throws {
        let stage = TemporaryDirectory()
        defer { stage.remove() }
        let result = await runProcess(
            "\(Self.deploy)/install.sh",
            ["--destdir", stage.path, "--prefix", "/opt/lmtphook", "--binary", try Binary.require()]
        )
        #expect(result.status == 0, "\(result.output)")
        func mode(_ path: String) -> mode_t? {
            var info = stat()
            return stat(stage.path + path, &info) == 0 ? info.st_mode & 0o7777 : nil
        }
        #expect(mode("/opt/lmtphook/bin/lmtphook") == 0o755)
        #expect(mode("/opt/lmtphook/share/man/man8/lmtphook.8") == 0o644, "the man page: man 8 lmtphook")
        #expect(mode("/etc/lmtphook") == 0o750)
        #expect(mode("/etc/lmtphook/lmtphook.yaml") == 0o640, "secrets stay private")
        #expect(mode("/etc/lmtphook/secrets.env") == 0o640)
        #expect(mode("/etc/lmtphook/templates/jira.json.mustache") == 0o644)
        #expect(mode("/var/lib/lmtphook/spool") == 0o750)
        #expect(mode("/var/spool/postfix/lmtphook") == 0o2750, "setgid: the socket inherits group postfix")
        let unit = String(decoding: readFile(stage.path + "/etc/systemd/system/lmtphook.service") ?? [], as: UTF8.self)
        #expect(unit.contains("ExecStart=/opt/lmtphook/bin/lmtphook serve --config /etc/lmtphook/lmtphook.yaml"))
        #expect(await runProcess(stage.path + "/opt/lmtphook/bin/lmtphook", ["--version"]).status == 0)
        // A second run keeps the edited configuration.
        writeFile(stage.path + "/etc/lmtphook/lmtphook.yaml", "# edited\n", mode: 0o640)
        #expect(
            await runProcess("\(Self.deploy)/install.sh", ["--destdir", stage.path, "--binary", try Binary.require()])
                .status == 0
        )
        #expect(
            String(decoding: readFile(stage.path + "/etc/lmtphook/lmtphook.yaml") ?? [], as: UTF8.self) == "# edited\n"
        )
    }
}
