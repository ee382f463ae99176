import Delivery
import LMTPCore
import LMTPServer
import MailCore
import Spool
import Targets

/// The settings of `lmtphook serve`, from flags or from a configuration file.
package struct RelayConfiguration: Sendable {
    /// The LMTP side: listeners, limits, timeouts.
    package var server: LMTPServerConfiguration
    /// The endpoints; none runs the built-in local receiver and prints each document on stdout.
    package var endpoints: [WebhookEndpoint]
    /// Which recipients go to which endpoints; `nil` sends every recipient to every endpoint.
    package var routes: RouteTable?
    /// Payload options for the built-in local receiver (a configured endpoint carries its own).
    package var payload: PayloadOptions
    /// Spool directory: with one, transient failures are queued durably and retried; without, they get 451.
    package var spoolDirectory: String?
    /// The control socket `lmtphook spool …` talks to (default: `SPOOL/control.sock`; only with a spool).
    package var controlSocket: String?
    /// Sync budget, retry schedule, circuit breaker.
    package var delivery: DeliverySettings
    /// `delivery.threads`: the most webhook requests in flight at once (all on one transfer thread).
    package var deliveryThreads: Int
    /// Where `serve` answers `GET /metrics` and `GET /healthz` (`host:port`), if anywhere.
    package var metricsListen: String?
    /// Refuse webhook connections to private, loopback, link-local and other non-package addresses.
    package var denyPrivateWebhookAddresses = false
    /// Fault injection in the spool's I/O (tests only).
    package var spoolFaults: SpoolFaultInjection?

    package init(
        server: LMTPServerConfiguration,
        webhook: WebhookEndpoint? = nil,
        endpoints: [WebhookEndpoint] = [],
        routes: RouteTable? = nil,
        payload: PayloadOptions = PayloadOptions(),
        spoolDirectory: String? = nil,
        delivery: DeliverySettings = DeliverySettings(),
        deliveryThreads: Int = 16
    ) {
        self.server = server
        self.endpoints = (webhook.map { [$0] } ?? []) + endpoints
        self.routes = routes
        self.payload = payload
        self.spoolDirectory = spoolDirectory
        self.delivery = delivery
        self.deliveryThreads = deliveryThreads
    }

    /// The delivery journal's file (default: `SPOOL/journal.sqlite`; without a spool it is kept
    /// in memory, which still covers MTA retries while the process runs).
    package var journal: String?

    /// The journal file in force, `nil` for one in memory.
    package var effectiveJournal: String? { journal ?? spoolDirectory.map { $0 + "/journal.sqlite" } }

    /// The control socket path in force, if there is a spool.
    package var effectiveControlSocket: String? {
        spoolDirectory.map { controlSocket ?? ControlServer.defaultPath(spool: $0) }
    }

    /// The route table in force: the configured one, or one catch-all route to every endpoint.
    var effectiveRoutes: RouteTable {
        routes
            ?? RouteTable(routes: [
                Route(name: "default", conditions: [RouteCondition()], endpoints: endpoints.map(\.name))
            ])
    }
}

extension RelayConfiguration {
    /// The server configuration as run: with a spool, message bytes beyond the in-memory limit per
    /// transaction are written to `SPOOL/incoming` while they arrive.
    package var effectiveServer: LMTPServerConfiguration {
        var server = self.server
        if server.spillDirectory == nil, let spoolDirectory { server.spillDirectory = spoolDirectory + "/incoming" }
        server.session.greetingText = "LMTP lmtphook ready"
        server.metricsPrefix = "lmtphook_lmtp"
        return server
    }
}
