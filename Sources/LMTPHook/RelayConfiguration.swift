import LMTPCore
import LMTPServer
import MailCore

/// The settings of `lmtphook serve`.
public struct RelayConfiguration: Sendable {
    /// The LMTP side: listeners, limits, timeouts.
    public var server: LMTPServerConfiguration
    /// The webhook; `nil` runs the built-in local receiver and prints each document on stdout.
    public var webhook: WebhookEndpoint?
    /// Payload options for the built-in local receiver (a configured webhook carries its own).
    public var payload: PayloadOptions
    /// Spool directory: with one, transient failures are queued durably and retried; without, they get 451.
    public var spoolDirectory: String?
    /// Sync budget, retry schedule, circuit breaker.
    public var delivery: WebhookDelivery.Settings
    /// Delivery threads: the most webhook requests in flight at once.
    public var deliveryThreads: Int

    public init(
        server: LMTPServerConfiguration, webhook: WebhookEndpoint? = nil, payload: PayloadOptions = PayloadOptions(),
        spoolDirectory: String? = nil, delivery: WebhookDelivery.Settings = WebhookDelivery.Settings(), deliveryThreads: Int = 16
    ) {
        self.server = server
        self.webhook = webhook
        self.payload = payload
        self.spoolDirectory = spoolDirectory
        self.delivery = delivery
        self.deliveryThreads = deliveryThreads
    }
}
