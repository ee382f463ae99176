import LMTPCore
import LMTPServer
import Logging
import NIOPosix
import ServiceLifecycle
import Spool
import WebhookClient

/// lmtphook itself: an ``LMTPServer`` whose messages go to a webhook through libcurl (or to the
/// built-in local receiver when no webhook is configured), with the durable spool and its retry
/// worker when a spool directory is configured.
public final class Relay: Service, Sendable {
    public let configuration: RelayConfiguration
    private let logger: Logger
    private let server: LMTPServer
    private let client: WebhookClient
    private let spoolThreads: NIOThreadPool
    private let localSink: WebhookSink?
    /// The delivery engine (sync attempt, spool, retries).
    public let delivery: WebhookDelivery
    /// The webhook URL in use (the local receiver's when none was configured).
    public let webhookURL: String

    /// Prepares the relay; `localRecord` receives what the built-in receiver gets (default: stdout).
    public init(
        configuration: RelayConfiguration, logger: Logger,
        localRecord: (@Sendable (WebhookSink.Request) -> Void)? = nil
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        let endpoint: WebhookEndpoint
        if let webhook = configuration.webhook {
            endpoint = webhook
            localSink = nil
        } else {
            let sink = try await WebhookSink.start(record: localRecord ?? StandardOutput.printJSONLine)
            endpoint = WebhookEndpoint(url: sink.url, payload: configuration.payload)
            localSink = sink
            logger.notice("no webhook configured: delivering to the built-in local receiver, documents go to stdout", metadata: ["url": "\(sink.url)"])
        }
        webhookURL = endpoint.url
        client = WebhookClient(threads: configuration.deliveryThreads)
        spoolThreads = NIOThreadPool(numberOfThreads: 20)
        spoolThreads.start()
        let spool: Spool?
        do {
            if let path = configuration.spoolDirectory {
                spool = try await spoolThreads.runIfActive { try Spool(path: path) }  // mkdir/open: off the cooperative pool
            } else {
                spool = nil
            }
        } catch {
            await client.shutdown()
            try? await spoolThreads.shutdownGracefully()
            await localSink?.stop()
            throw error
        }
        let delivery = WebhookDelivery(endpoint: endpoint, client: client, spool: spool, spoolThreads: spoolThreads, settings: configuration.delivery, logger: logger)
        self.delivery = delivery
        server = LMTPServer(configuration: configuration.server, logger: logger) { message in
            await delivery.deliver(message)
        }
        do {
            try await delivery.loadSpool()
        } catch {
            await release()
            throw error
        }
    }

    /// Serves until ``stop()`` or graceful shutdown; retries run alongside and stop with the server.
    public func run() async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.delivery.runRetries() }
                try await server.run()
                group.cancelAll()
                try await group.waitForAll()
            }
        } catch {
            server.stop()
            await release()
            throw error
        }
        await release()
    }

    private func release() async {
        await client.shutdown()
        try? await spoolThreads.shutdownGracefully()
        await localSink?.stop()
    }

    /// Waits until the LMTP listeners are bound; returns their addresses.
    public func waitUntilListening() async throws -> [String] {
        try await server.waitUntilListening()
    }

    /// Stops accepting, finishes transactions in flight, then ``run()`` returns. Safe from anywhere.
    public func stop() { server.stop() }
}
