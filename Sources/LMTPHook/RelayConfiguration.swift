import LMTPCore
import LMTPServer
import MailCore

/// The settings of `lmtphook serve`.
public struct RelayConfiguration: Sendable {
    /// The LMTP side: listeners, limits, timeouts.
    public var server: LMTPServerConfiguration
    /// The webhook; `nil` runs the built-in local receiver and prints each document on stdout.
    public var webhook: WebhookDelivery.Endpoint?
    /// Payload options for the built-in local receiver (a configured webhook carries its own).
    public var payload: PayloadOptions
    /// Spool directory (accepted now; the durable spool arrives with the spool work).
    public var spoolDirectory: String?
    /// Delivery threads: the most webhook requests in flight at once.
    public var deliveryThreads: Int

    public init(
        server: LMTPServerConfiguration, webhook: WebhookDelivery.Endpoint? = nil, payload: PayloadOptions = PayloadOptions(),
        spoolDirectory: String? = nil, deliveryThreads: Int = 16
    ) {
        self.server = server
        self.webhook = webhook
        self.payload = payload
        self.spoolDirectory = spoolDirectory
        self.deliveryThreads = deliveryThreads
    }
}
