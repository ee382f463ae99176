import LMTPCore
import LMTPServer
import Logging
import ServiceLifecycle
import WebhookClient

/// lmtphook itself: an ``LMTPServer`` whose messages go to a webhook through libcurl, or to the
/// built-in local receiver when no webhook is configured.
public final class Relay: Service, Sendable {
    public let configuration: RelayConfiguration
    private let logger: Logger
    private let server: LMTPServer
    private let client: WebhookClient
    private let localSink: WebhookSink?
    /// The webhook URL in use (the local receiver's when none was configured).
    public let webhookURL: String

    /// Prepares the relay; `localRecord` receives what the built-in receiver gets (default: stdout).
    public init(
        configuration: RelayConfiguration, logger: Logger,
        localRecord: (@Sendable (WebhookSink.Request) -> Void)? = nil
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        let endpoint: WebhookDelivery.Endpoint
        if let webhook = configuration.webhook {
            endpoint = webhook
            localSink = nil
        } else {
            let sink = try await WebhookSink.start(record: localRecord ?? StandardOutput.printJSONLine)
            endpoint = WebhookDelivery.Endpoint(url: sink.url, payload: configuration.payload)
            localSink = sink
            logger.notice("no webhook configured: delivering to the built-in local receiver, documents go to stdout", metadata: ["url": "\(sink.url)"])
        }
        webhookURL = endpoint.url
        client = WebhookClient(threads: configuration.deliveryThreads)
        let delivery = WebhookDelivery(endpoint: endpoint, client: client, logger: logger)
        server = LMTPServer(configuration: configuration.server, logger: logger) { message in
            await delivery.deliver(message)
        }
    }

    /// Serves until ``stop()`` or graceful shutdown; then releases the client and the local receiver.
    public func run() async throws {
        do {
            try await server.run()
        } catch {
            await release()
            throw error
        }
        await release()
    }

    private func release() async {
        await client.shutdown()
        await localSink?.stop()
    }

    /// Waits until the LMTP listeners are bound; returns their addresses.
    public func waitUntilListening() async throws -> [String] {
        try await server.waitUntilListening()
    }

    /// Stops accepting, finishes transactions in flight, then ``run()`` returns. Safe from anywhere.
    public func stop() { server.stop() }
}
