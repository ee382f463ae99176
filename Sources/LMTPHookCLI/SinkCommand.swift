import ArgumentParser
import LMTPHook
import LMTPServer
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `lmtphook sink`: a local webhook receiver that writes every POSTed body as one line.
struct SinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sink",
        abstract: "Run a local webhook receiver that writes each POSTed document as one line (stdout or a file).",
        discussion: "POST to /status/NNN to get status NNN back (to watch how your MTA handles failures)."
    )

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "host:port"))
    var listen: String = "127.0.0.1:8025"

    @Option(help: ArgumentHelp("Append lines to this file instead of stdout.", valueName: "file"))
    var output: String?

    @OptionGroup var logging: LogOptions

    func validate() throws {
        guard case .tcp = LMTPListenAddress.parseTCP(listen) else {
            throw ValidationError("--listen takes HOST:PORT, got \(listen)")
        }
    }

    func run() async throws {
        let logger = logging.makeLogger(label: "lmtphook.sink")
        guard case .tcp(let host, let port) = LMTPListenAddress.parseTCP(listen) else { return }
        let record: @Sendable (WebhookSink.Request) -> Void
        if let output {
            let fd = open(output, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw ValidationError("cannot open \(output): \(String(cString: strerror(errno)))") }
            record = { request in
                var bytes = request.body.filter { $0 != 0x0A && $0 != 0x0D }
                bytes.append(0x0A)
                bytes.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
            }
        } else {
            record = StandardOutput.printJSONLine
        }
        let service = SinkService(host: host, port: port, record: record, logger: logger)
        try await ServiceGroup(
            configuration: .init(
                services: [.init(service: service)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        ).run()
    }
}

/// Runs a ``WebhookSink`` until graceful shutdown.
struct SinkService: Service {
    let host: String
    let port: Int
    let record: @Sendable (WebhookSink.Request) -> Void
    let logger: Logger

    func run() async throws {
        let sink = try await WebhookSink.start(host: host, port: port, record: record)
        logger.info("receiving", metadata: ["url": "\(sink.url)"])
        try? await gracefulShutdown()
        await sink.stop()
    }
}
