import ArgumentParser
import LMTPHook
import LMTPServer
import Logging
import NIOPosix
import ServiceLifecycle

/// `lmtphook demo`: the whole path on this machine, no configuration needed.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Start the relay with the built-in local receiver, deliver a sample message over LMTP, and show the JSON.",
        discussion: "Keeps serving afterwards (Ctrl-C stops it) unless --once is given."
    )

    @Option(help: ArgumentHelp("TCP address for the LMTP listener.", valueName: "host:port"))
    var listen: String = "127.0.0.1:2424"

    @Flag(help: "Exit after the sample message instead of serving on.")
    var once = false

    @Flag(help: "Print each received document as one JSON line instead of indented.")
    var jsonLines = false

    @OptionGroup var logging: LogOptions

    func validate() throws {
        guard case .tcp = LMTPListenAddress.parseTCP(listen) else {
            throw ValidationError("--listen takes HOST:PORT, got \(listen)")
        }
    }

    static let sample = """
        From: Alice Example <alice@example.org>
        To: Support <support@example.test>
        Cc: ops@example.test
        Subject: Printer on floor 3 is on fire
        Message-ID: <demo-1@example.org>
        Date: Sat, 28 Nov 2026 10:00:00 +0000
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8

        Hello, this message went through lmtphook: LMTP in, JSON out.
        .A line starting with a dot survives dot-stuffing.

        """

    func run() async throws {
        let logger = logging.makeLogger(label: "lmtphook")
        guard case .tcp(let host, let port) = LMTPListenAddress.parseTCP(listen) else { return }
        let server = LMTPServerConfiguration(
            listeners: [.tcp(host: host, port: port)],
            session: .init(hostname: "lmtphook.demo"),
            shutdownGracePeriod: .seconds(5)
        )
        let jsonLines = self.jsonLines
        let relay = try await Relay(configuration: RelayConfiguration(server: server), logger: logger) { request in
            StandardOutput.writeLine(
                "--- the local receiver got \(request.method) \(request.path) with \(request.body.count) bytes of JSON:"
            )
            if jsonLines { StandardOutput.printJSONLine(request) } else { StandardOutput.printIndentedJSON(request) }
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: relay)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let address = try await relay.waitUntilListening()[0]
            StandardOutput.writeLine(
                "--- lmtphook is listening on \(address) (LMTP); delivering a sample message to two recipients"
            )
            let once = self.once
            let (connectHost, connectPort) = try Self.hostAndPort(address)
            let replies = try await NIOThreadPool.singleton.runIfActive {
                let connection = try LMTPClientConnection(host: connectHost, port: connectPort)
                let replies = try connection.deliver(
                    lhlo: "demo.client",
                    from: "alice@example.org",
                    to: ["support@example.test", "ops@example.test"],
                    message: Array(Self.sample.utf8)
                )
                try connection.send("QUIT\r\n")
                _ = try? connection.readReply()
                return replies
            }
            StandardOutput.writeLine("--- LMTP replies, one per recipient:")
            for reply in replies { StandardOutput.writeLine("\(reply.code) \(reply.lines.joined(separator: " "))") }
            let allDelivered = replies.count == 2 && replies.allSatisfy { $0.code == 250 }
            if once {
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                if !allDelivered { throw ExitCode.failure }
                StandardOutput.writeLine("--- demo OK")
                return
            }
            StandardOutput.writeLine(
                "--- still serving; try: swaks --protocol LMTP --server \(address) --to you@example.test   (Ctrl-C stops)"
            )
            try await tasks.waitForAll()
        }
    }

    static func hostAndPort(_ address: LMTPListenAddress) throws -> (String, Int) {
        guard case .tcp(let host, let port) = address else {
            throw ValidationError("bad address \(address)")
        }
        return (host, port)
    }
}
