import Delivery
import Foundation
import LMTPCore
import LMTPHook
import LMTPServer
import Logging
import NIOPosix
import WebhookClient

/// A relay running in-process on a temp UNIX socket and a TCP port, POSTing to `webhookURL`.
package struct RunningRelay {
    package let relay: Relay
    package let task: Task<Void, any Error>
    package let directory: TemporaryDirectory
    package let socketPath: String
    package let tcpPort: Int

    package static func start(
        webhookURL: String?,
        idleTimeout: Duration = .seconds(300),
        session: LMTPConfiguration = LMTPConfiguration(hostname: "relay.test"),
        socketMode: UInt32 = 0o660,
        webhookTimeoutMilliseconds: Int = 5_000,
        spool: String? = nil,
        delivery: DeliverySettings = DeliverySettings(),
        secrets: [String] = [],
        socketPath: String? = nil
    ) async throws -> RunningRelay {
        let directory = TemporaryDirectory()
        let socketPath = socketPath ?? directory.file("lmtp.sock")
        let server = LMTPServerConfiguration(
            listeners: [.unix(path: socketPath, mode: socketMode), .tcp(host: "127.0.0.1", port: 0)],
            session: session,
            idleTimeout: idleTimeout,
            shutdownGracePeriod: .seconds(5)
        )
        let signer = try WebhookSigner(secrets: secrets)
        let endpoint = webhookURL.map {
            WebhookEndpoint(
                url: $0,
                connectTimeoutMilliseconds: 1_000,
                totalTimeoutMilliseconds: webhookTimeoutMilliseconds,
                signer: signer
            )
        }
        return try await start(
            RelayConfiguration(
                server: server,
                webhook: endpoint,
                spoolDirectory: spool,
                delivery: delivery,
                deliveryThreads: 8
            ),
            directory: directory,
            keepListeners: true,
            socketPath: socketPath
        )
    }

    /// Runs `configuration` (from a config file, say) on a temp UNIX socket and a TCP port instead of its own listeners.
    package static func start(
        _ configuration: RelayConfiguration,
        directory: TemporaryDirectory = TemporaryDirectory(),
        keepListeners: Bool = false,
        socketPath: String? = nil,
        log: CapturedLog? = nil,
        clock: DeliveryClock = .system
    ) async throws -> RunningRelay {
        var configuration = configuration
        let socketPath = socketPath ?? directory.file("lmtp.sock")
        if !keepListeners {
            configuration.server.listeners = [.unix(path: socketPath, mode: 0o660), .tcp(host: "127.0.0.1", port: 0)]
            configuration.server.shutdownGracePeriod = .seconds(5)
        }
        var logger = log?.logger() ?? Logger(label: "test")
        if log == nil { logger.logLevel = .warning }
        let relay = try await Relay(configuration: configuration, logger: logger, localRecord: { _ in }, clock: clock)
        let task = Task { try await relay.run() }
        let addresses = try await relay.waitUntilListening()
        guard case .tcp(_, let port) = addresses.last else {
            throw LMTPServerError("no TCP address in \(addresses)")
        }
        return RunningRelay(relay: relay, task: task, directory: directory, socketPath: socketPath, tcpPort: port)
    }

    package func stop() async throws {
        relay.stop()
        try await task.value
        directory.remove()
    }
}

/// A small RFC 5322 message with CRLF line ends.
package func sampleMessage(
    subject: String = "Hello",
    id: String = "<m1@example.org>",
    body: String = "Body line\r\n.dot line\r\n"
) -> [UInt8] {
    Array(
        "From: A <a@example.org>\r\nTo: b@example.test\r\nSubject: \(subject)\r\nMessage-ID: \(id)\r\n\r\n\(body)".utf8
    )
}

/// The JSON object of a recorded request.
package func json(_ body: [UInt8]) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
        throw LMTPServerError("body is not a JSON object")
    }
    return object
}
