import Delivery
import LMTPCore
import LMTPServer
import Logging
import MailCore
import MessageData
import NIOConcurrencyHelpers
import NIOPosix
import ServiceLifecycle
import Spool
import Targets
import WebhookClient

/// lmtphook itself: an ``LMTPServer`` whose messages go to a webhook through libcurl (or to the
/// built-in local receiver when no webhook is configured), with the durable spool and its retry
/// worker when a spool directory is configured.
package final class Relay: Service, Sendable {
    package let configuration: RelayConfiguration
    private let logger: Logger
    private let server: LMTPServer
    /// One thread for the relay's own blocking file work (opening the spool, the monitor's
    /// spool statistics); the engine has its own.
    private let fileThreads: NIOThreadPool
    private let localSink: WebhookSink?
    /// The delivery engine (sync attempt, spool, retries).
    package let delivery: DeliveryEngine
    /// The webhook URL of the first endpoint (the local receiver's when none was configured).
    package let webhookURL: String
    /// The route table in force (replaced by ``reload(_:)``).
    private let routes: NIOLockedValueBox<RouteTable>
    /// Readiness for `/healthz`, refreshed by the monitor.
    private let readiness = NIOLockedValueBox<(ready: Bool, detail: String)>((false, "starting"))

    /// Prepares the relay; `localRecord` receives what the built-in receiver gets (default: stdout).
    package init(
        configuration: RelayConfiguration,
        logger: Logger,
        localRecord: (@Sendable (WebhookSink.Request) -> Void)? = nil,
        clock: DeliveryClock = .system
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        var configuration = configuration
        if configuration.endpoints.isEmpty {
            let sink = try await WebhookSink.start(record: localRecord ?? StandardOutput.printJSONLine)
            configuration.endpoints = [Self.localEndpoint(sink, payload: configuration.payload)]
            configuration.routes = nil
            localSink = sink
            logger.notice(
                "no webhook configured: delivering to the built-in local receiver, documents go to stdout",
                metadata: ["url": "\(sink.url)"]
            )
        } else {
            localSink = nil
        }
        webhookURL = configuration.endpoints[0].url
        let routeTable = configuration.effectiveRoutes
        routes = NIOLockedValueBox(routeTable)
        fileThreads = NIOThreadPool(numberOfThreads: 2)
        fileThreads.start()
        let spool: Spool?
        let journal: DeliveryJournal
        do {
            let journalPath = configuration.effectiveJournal
            if let path = configuration.spoolDirectory {
                let faults = configuration.spoolFaults
                // mkdir/open: off the cooperative pool
                spool = try await fileThreads.runIfActive { try Spool(path: path, faults: faults) }
            } else {
                spool = nil
            }
            journal = try await fileThreads.runIfActive { try DeliveryJournal(path: journalPath) }
        } catch {
            try? await fileThreads.shutdownGracefully()
            await localSink?.stop()
            throw error
        }
        let delivery = DeliveryEngine(
            endpoints: configuration.endpoints,
            delimiters: routeTable.delimiters,
            spool: spool,
            journal: journal,
            threads: configuration.deliveryThreads,
            settings: configuration.delivery,
            clock: clock,
            logger: logger
        )
        self.delivery = delivery
        let routes = self.routes
        let policy = LMTPPolicy(recipient: { recipient in
            let address = recipient.mailbox.address
            guard routes.withLockedValue({ $0.resolve(address) }) == nil else { return .accept }
            delivery.metrics.recipient("rejected")
            return .reply(LMTPReply(550, "5.1.1", "<\(address)>: no route for this recipient"))
        })
        let threads = fileThreads
        server = LMTPServer(configuration: configuration.effectiveServer, policy: policy, logger: logger) {
            message,
            file in
            // A message that arrived bigger than the spill threshold stays in its file: opened
            // here (the descriptor outlives the server's name for it), linked into the spool.
            var body = MessageBody.bytes(message.data)
            if let file {
                do {
                    body = .file(try await threads.runIfActive { try MessageFile(opening: file.path) })
                } catch {
                    logger.error("cannot open an incoming message; refused with 451", metadata: ["error": "\(error)"])
                    return LMTPRecipientResults(all: .temporaryFailure("Cannot read the message back, try again later"))
                }
            }
            return await Relay.deliver(message, body: body, routes: routes.withLockedValue { $0 }, delivery: delivery)
        }
    }

    /// Routes each recipient, delivers once per endpoint (concurrently), and gives each recipient
    /// the combined result of its endpoints: any 4xx wins (the MTA retries; endpoints that already
    /// took the recipient are not sent it again, see ``DeliveryJournal``), then any 5xx, else 250.
    static func deliver(
        _ message: LMTPMessage,
        body: MessageBody? = nil,
        routes: RouteTable,
        delivery: DeliveryEngine
    ) async -> LMTPRecipientResults {
        let body = body ?? .bytes(message.data)
        var results = [[LMTPRecipientResult]](repeating: [], count: message.recipients.count)
        var groups: [String: (indices: [Int], route: String)] = [:]
        var order: [String] = []
        for (index, recipient) in message.recipients.enumerated() {
            guard let match = routes.resolve(recipient.mailbox.address) else {
                // The route went away in a reload between RCPT and the final dot.
                results[index] = [
                    LMTPRecipientResult(code: 550, enhancedCode: "5.1.1", text: "no route for this recipient")
                ]
                continue
            }
            for name in match.endpoints {
                if groups[name] == nil { order.append(name) }
                groups[name, default: ([], match.route)].indices.append(index)
            }
        }
        let digest = delivery.journal == nil ? nil : await delivery.digest(mailFrom: message.sender.address, body: body)
        let (parsed, reservation) = await delivery.prepare(body, for: order.compactMap { delivery.endpoint(named: $0) })
        /// What an endpoint did: a result per recipient index, and the request it took, if any.
        typealias Outcome = (
            results: [Int: LMTPRecipientResult], taken: (Disposition, DeliveryRequest, WebhookEndpoint)?
        )
        @Sendable func deliver(to name: String, _ indices: [Int], route: String) async -> (String, Outcome) {
            guard let endpoint = delivery.endpoint(named: name) else {
                let result = LMTPRecipientResult.temporaryFailure("endpoint \(name) is not configured")
                return (name, (Dictionary(uniqueKeysWithValues: indices.map { ($0, result) }), nil))
            }
            // An MTA retry of recipients this endpoint already took: not sent again.
            let addresses = indices.map { message.recipients[$0].mailbox.address }
            var taken: [String: DeliveryJournal.Taken] = [:]
            if let digest {
                taken = await delivery.alreadyTaken(digest: digest, endpoint: name, recipients: addresses)
            }
            var byIndex: [Int: LMTPRecipientResult] = [:]
            for index in indices {
                if let earlier = taken[message.recipients[index].mailbox.address] {
                    byIndex[index] = LMTPRecipientResult(alreadyTaken: earlier)
                }
            }
            let remaining = indices.filter { byIndex[$0] == nil }
            guard !remaining.isEmpty else { return (name, (byIndex, nil)) }
            let envelope = Relay.envelope(of: message, recipients: remaining.map { message.recipients[$0] })
            let request = DeliveryRequest(
                envelope: envelope,
                body: body,
                parsed: parsed,
                reservation: reservation,
                tags: DeliveryEngine.tags(envelope.rcptTo, delimiters: routes.delimiters),
                route: route,
                digest: digest
            )
            let disposition = await delivery.deliver(request, to: endpoint)
            let result = LMTPRecipientResult(disposition)
            for index in remaining { byIndex[index] = result }
            return (name, (byIndex, (disposition, request, endpoint)))
        }
        var outcomes: [String: Outcome] = [:]
        if order.count == 1, let indices = groups[order[0]]?.indices, let route = groups[order[0]]?.route {
            // One endpoint (the common case): no child task, no hand-off to another thread.
            outcomes[order[0]] = await deliver(to: order[0], indices, route: route).1
        } else {
            outcomes = await withTaskGroup(of: (String, Outcome).self) { group in
                for name in order {
                    guard let indices = groups[name]?.indices, let route = groups[name]?.route else { continue }
                    group.addTask { await deliver(to: name, indices, route: route) }
                }
                var outcomes: [String: Outcome] = [:]
                for await (name, outcome) in group { outcomes[name] = outcome }
                return outcomes
            }
        }
        for name in order {
            guard let byIndex = outcomes[name]?.results else { continue }
            for index in groups[name]?.indices ?? [] {
                if let result = byIndex[index] { results[index].append(result) }
            }
        }
        let combined = results.map(combine)
        // The MTA will retry the recipients that got a 4xx with the same bytes: remember which
        // endpoints took which recipients, so that the retry is not sent to them again. (Nothing
        // to remember when no recipient is retried: that keeps the journal off the common path.)
        if combined.contains(where: { $0.code / 100 == 4 }) {
            for name in order {
                guard let (disposition, request, endpoint) = outcomes[name]?.taken else { continue }
                await delivery.remember(disposition, request, endpoint)
            }
        }
        var answer = LMTPRecipientResults()
        for (index, recipient) in message.recipients.enumerated() where answer[recipient] == nil {
            answer[recipient] = combined[index]
        }
        return answer
    }

    static func combine(_ results: [LMTPRecipientResult]) -> LMTPRecipientResult {
        if let temporary = results.first(where: { $0.code / 100 == 4 }) { return temporary }
        if let permanent = results.first(where: { $0.code / 100 == 5 }) { return permanent }
        guard let first = results.first else { return .temporaryFailure("no endpoint") }
        if results.count == 1 { return first }
        let text = results.map(\.text).joined(separator: "; ")
        return LMTPRecipientResult(
            code: first.code,
            enhancedCode: first.enhancedCode,
            text: Relay.shorten(text, to: 400)
        )
    }

    /// Maps an LMTP transaction to the protocol-independent envelope of the payload.
    package static func envelope(of message: LMTPMessage, recipients: [LMTPRecipient]? = nil) -> MailEnvelope {
        var seen = Set<String>()
        let recipients = (recipients ?? message.recipients).map(\.mailbox.address).filter { seen.insert($0).inserted }
        let client = message.client
        return MailEnvelope(
            mailFrom: message.sender.address,
            rcptTo: recipients,
            lhlo: message.lhloName,
            smtpUTF8: message.smtpUTF8,
            body: message.bodyType?.rawValue,
            client: .init(
                name: client.name,
                addr: client.address,
                port: client.port,
                proto: client.proto,
                helo: client.helo,
                ident: client.ident,
                source: client.source
            )
        )
    }

    static func shorten(_ text: String, to limit: Int) -> String {
        let clean = String(text.map { $0.isNewline || $0 == "\r" ? " " : $0 })
        return clean.count <= limit ? clean : String(clean.prefix(limit)) + "…"
    }

    /// Applies a new configuration without dropping connections: routes, endpoints and the
    /// delivery settings (sync budget, retry schedule and age, breaker, retry concurrency,
    /// journal window); mail in flight finishes with the old ones. What needs a restart —
    /// listeners, limits and timeouts, the spool directory, the journal file, the delivery
    /// threads, the metrics address — stays as started; the returned notes name each one changed.
    package func reload(_ new: RelayConfiguration) -> [String] {
        let old = configuration
        let needRestart: [(changed: Bool, what: String)] = [
            (new.server != old.server, "listeners, limits or timeouts"),
            (new.spoolDirectory != old.spoolDirectory, "the spool directory"),
            (new.effectiveJournal != old.effectiveJournal, "delivery.journal"),
            (new.deliveryThreads != old.deliveryThreads, "delivery.threads"),
            (new.metricsListen != old.metricsListen, "metrics.listen"),
            (new.effectiveControlSocket != old.effectiveControlSocket, "spool.control_socket"),
        ]
        var notes = needRestart.filter(\.changed).map { "\($0.what) changed: needs a restart to take effect" }
        var endpoints = new.endpoints
        var table = new.effectiveRoutes
        if endpoints.isEmpty, let localSink {
            endpoints = [Self.localEndpoint(localSink, payload: new.payload)]
            table = RouteTable(routes: [Route(name: "default", conditions: [RouteCondition()], endpoints: ["local"])])
        } else if endpoints.isEmpty {
            notes.append("the new configuration has no endpoints: kept the current ones")
            return notes
        }
        delivery.update(endpoints: endpoints, delimiters: table.delimiters, settings: new.delivery)
        routes.withLockedValue { $0 = table }
        return notes
    }

    /// The built-in receiver as an endpoint (every recipient goes there when none is configured).
    private static func localEndpoint(_ sink: WebhookSink, payload: PayloadOptions) -> WebhookEndpoint {
        WebhookEndpoint(name: "local", url: sink.url, payload: payload)
    }

    /// `ready` once the listeners are up and the spool (if any) can take a file; else why not.
    package func health() -> (ready: Bool, detail: String) { readiness.withLockedValue { $0 } }

    /// Every few seconds: spool depth, bytes, oldest entry, dead letters, writability, circuits.
    private func monitor() async {
        do { _ = try await server.waitUntilListening() } catch {
            readiness.withLockedValue { $0 = (false, "listeners failed: \(error)") }
            return
        }
        let metrics = delivery.metrics
        while !Task.isCancelled {
            metrics.prime(endpoints: delivery.endpointNames)
            var detail = "ok"
            var ready = true
            if let spool = delivery.queue {
                let snapshot = try? await fileThreads.runIfActive {
                    () -> (Bool, (live: Int, liveBytes: Int, dead: Int, deadBytes: Int), Int64?) in
                    (spool.isWritable(), spool.statistics(), spool.ids().first.flatMap(SpoolID.milliseconds(of:)))
                }
                if let (writable, statistics, oldest) = snapshot {
                    metrics.spoolWritable.record(writable ? 1 : 0)
                    metrics.spoolEntries.record(statistics.live)
                    metrics.spoolBytes.record(statistics.liveBytes)
                    metrics.deadLetters.record(statistics.dead)
                    metrics.deadLetterBytes.record(statistics.deadBytes)
                    metrics.spoolOldestAge.record(
                        oldest.map { Double(max(0, UnixTime.now().milliseconds - $0)) / 1000 } ?? 0
                    )
                    if !writable {
                        ready = false
                        detail = "spool \(spool.path) is not writable"
                    }
                }
            }
            for name in delivery.endpointNames { metrics.circuit(endpoint: name, open: delivery.circuitOpen(name)) }
            readiness.withLockedValue { $0 = (ready, detail) }
            try? await Task.sleep(for: .seconds(Self.monitorInterval))
        }
    }

    /// Seconds between monitor passes.
    static let monitorInterval = 5

    /// The route table in force.
    package var routeTable: RouteTable { routes.withLockedValue { $0 } }

    /// Serves until ``stop()`` or graceful shutdown. The delivery engine starts first (its
    /// threads, the spool loaded) and stops last, after the server has answered every
    /// transaction in flight.
    package func run() async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.delivery.run() }
                await delivery.waitUntilRunning()
                group.addTask { await self.monitor() }
                if let control = controlServer() { group.addTask { try await control.run() } }
                try await withTaskCancellationHandler {
                    try await server.run()
                } onCancel: {
                    server.stop()
                }
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

    /// The control socket for `lmtphook spool …`, when there is a spool.
    private func controlServer() -> ControlServer? {
        guard let spool = delivery.queue, let path = configuration.effectiveControlSocket else { return nil }
        return ControlServer(
            path: path,
            operations: SpoolOperations(spool: spool, engine: delivery, local: false, files: fileThreads),
            logger: logger
        )
    }

    private func release() async {
        try? await fileThreads.shutdownGracefully()
        await localSink?.stop()
    }

    /// Waits until the LMTP listeners are bound; returns their addresses.
    package func waitUntilListening() async throws -> [LMTPListenAddress] {
        try await server.waitUntilListening()
    }

    /// Stops accepting, finishes transactions in flight, then ``run()`` returns. Safe from anywhere.
    package func stop() { server.stop() }
}
