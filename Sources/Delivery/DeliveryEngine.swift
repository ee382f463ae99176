import Logging
import MailCore
import MessageData
import NIOPosix
import ServiceLifecycle
import Spool
import Synchronization
import Targets
import WebhookClient

/// One message for one endpoint: the recipients routed there, the bytes, what the payload says
/// about it.
package struct DeliveryRequest: Sendable {
    /// The envelope; `rcptTo` holds the recipients routed to this endpoint.
    package var envelope: MailEnvelope
    /// The message: in memory, or in a file (never read whole but to be parsed).
    package var body: MessageBody
    /// The message parsed once for all its endpoints (``DeliveryEngine/prepare(_:for:)``); `nil`:
    /// each attempt parses it.
    package var parsed: ParsedMessage?
    /// The memory budget held for this message while its attempts render and send it (with
    /// `parsed`); `nil`: each attempt takes its own share.
    package var reservation: DeliveryMemory.Reservation?
    /// Tags of those recipients (plus-addressing).
    package var tags: [String]
    /// The route that chose the endpoint.
    package var route: String?
    /// The message's ``DeliveryJournal/digest(mailFrom:raw:)``, computed once for all endpoints;
    /// with it the journal records which recipients the endpoint took.
    package var digest: String?

    package init(
        envelope: MailEnvelope,
        body: MessageBody,
        parsed: ParsedMessage? = nil,
        reservation: DeliveryMemory.Reservation? = nil,
        tags: [String] = [],
        route: String? = nil,
        digest: String? = nil
    ) {
        self.envelope = envelope
        self.body = body
        self.parsed = parsed
        self.reservation = reservation
        self.tags = tags
        self.route = route
        self.digest = digest
    }

    /// A request for a message in memory.
    package init(
        envelope: MailEnvelope,
        raw: [UInt8],
        tags: [String] = [],
        route: String? = nil,
        digest: String? = nil
    ) {
        self.init(envelope: envelope, body: .bytes(raw), tags: tags, route: route, digest: digest)
    }
}

/// The delivery engine: every attempt — the sync attempt after the final dot, one that outlives
/// the sync budget, a retry — goes through here, claims its spool entry while it runs, and
/// records its outcome in one place. Per-endpoint policy (breaker, bucket, slots) is an
/// ``EndpointPolicy`` per endpoint, the retry state a ``RetryQueue`` woken by events (an enqueue,
/// a freed slot, a reload, a due time) — it never polls. Time comes from a ``DeliveryClock``.
///
/// The engine is a `Service`: ``run()`` starts its threads (libcurl's and the spool's), loads
/// the spool, runs the retries until cancelled, waits for attempts in flight and releases the
/// threads. ``deliver(_:to:)`` waits until it runs.
///
/// It never answers "delivered" or "queued" unless the endpoint accepted the message or the
/// entry is fsync'd in the spool; no spool error drops an entry from the schedule (it is logged,
/// counted and tried again with backoff).
package final class DeliveryEngine: Service, Sendable {
    /// The settings in force (replaced by ``update(endpoints:delimiters:settings:)``).
    package var settings: DeliverySettings { state.withLock { $0.settings } }
    package let metrics = DeliveryMetrics()
    /// Message bytes in attempts at once (`limits.max_delivery_memory`).
    package let memory: DeliveryMemory
    private let clock: DeliveryClock
    private let spool: Spool?
    /// Which endpoint took which recipient of which message (skips work an MTA retry repeats).
    package let journal: DeliveryJournal?
    private let logger: Logger
    private let threads: Int
    /// `false` for an engine that only replays what it is asked to (`spool replay` with no
    /// daemon): it neither recovers the spool nor retries entries of its own accord.
    private let scheduling: Bool
    private let state: Mutex<State>
    private let doorbell = Doorbell()
    /// Sync budgets of the attempts in flight (one loop for all, no task per message).
    private let timer = DeadlineTimer()
    private let started = Gate()

    private struct Resources: Sendable {
        let client: WebhookClient
        let spoolThreads: NIOThreadPool
    }

    private struct SlotWaiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var settings: DeliverySettings
        var endpoints: [String: WebhookEndpoint]
        var delimiters: Set<Character>
        var policies: [String: EndpointPolicy] = [:]
        var waiters: [String: [SlotWaiter]] = [:]
        var nextWaiter: UInt64 = 0
        var queue = RetryQueue()
        /// Consecutive spool errors per entry (backoff for trying again).
        var spoolErrors: [String: Int] = [:]
        /// Sync attempts that outlived their budget and still run.
        var lateAttempts = 0
        var resources: Resources?
        var stopping = false
        /// Resumed when the last late attempt ends after ``run()`` stopped scheduling.
        var drained: CheckedContinuation<Void, Never>?
    }

    package init(
        endpoints: [WebhookEndpoint],
        delimiters: Set<Character> = ["+"],
        spool: Spool?,
        journal: DeliveryJournal? = nil,
        threads: Int,
        settings: DeliverySettings = DeliverySettings(),
        clock: DeliveryClock = .system,
        scheduling: Bool = true,
        logger: Logger
    ) {
        self.scheduling = scheduling
        self.spool = spool
        self.journal = journal
        self.clock = clock
        self.logger = logger
        self.threads = max(1, threads)
        self.memory = DeliveryMemory(limit: settings.maxDeliveryMemory)
        var state = State(settings: settings, endpoints: [:], delimiters: delimiters)
        Self.apply(endpoints, to: &state, settings: settings, threads: self.threads)
        self.state = Mutex(state)
    }

    // MARK: - Configuration

    private static func limits(
        _ endpoint: WebhookEndpoint,
        settings: DeliverySettings,
        threads: Int
    )
        -> EndpointPolicy.Limits
    {
        EndpointPolicy.Limits(
            breakerThreshold: settings.breakerThreshold,
            breakerCooldownMilliseconds: DeliveryClock.milliseconds(settings.breakerCooldown),
            maxInFlight: endpoint.maxInFlight ?? settings.maxInFlightPerEndpoint ?? max(1, threads - threads / 4),
            rateLimit: endpoint.rateLimit
        )
    }

    private static func apply(
        _ endpoints: [WebhookEndpoint],
        to state: inout State,
        settings: DeliverySettings,
        threads: Int
    ) {
        let old = state.endpoints
        state.endpoints = Dictionary(endpoints.map { ($0.name, $0) }) { $1 }
        var policies: [String: EndpointPolicy] = [:]
        for endpoint in endpoints {
            let limits = limits(endpoint, settings: settings, threads: threads)
            // Health (breaker, bucket) is kept for an endpoint whose URL and rate did not change;
            // requests in flight keep their slots either way.
            if var policy = state.policies[endpoint.name] {
                if let before = old[endpoint.name], before.url != endpoint.url || before.rateLimit != endpoint.rateLimit
                {
                    let fresh = EndpointPolicy(limits: limits)
                    policy = fresh.carryingSlots(of: policy)
                }
                policy.limits = limits
                policies[endpoint.name] = policy
            } else {
                policies[endpoint.name] = EndpointPolicy(limits: limits)
            }
        }
        state.policies = policies
    }

    /// Replaces the endpoints (configuration reload). Health and rate-limit state is kept for
    /// endpoints whose URL and rate did not change; queued entries follow their endpoint's name
    /// (those of an endpoint that went away wait until a reload brings it back).
    package func update(endpoints: [WebhookEndpoint], delimiters: Set<Character>, settings: DeliverySettings? = nil) {
        state.withLock { state in
            state.delimiters = delimiters
            if let settings { state.settings = settings }
            Self.apply(endpoints, to: &state, settings: state.settings, threads: threads)
        }
        if let settings { memory.update(limit: settings.maxDeliveryMemory) }
        doorbell.ring()
    }

    /// The names of the configured endpoints.
    package var endpointNames: [String] { state.withLock { $0.endpoints.keys.sorted() } }

    /// The endpoint with this name, as currently configured.
    package func endpoint(named name: String) -> WebhookEndpoint? { state.withLock { $0.endpoints[name] } }

    /// The spool, if one is configured.
    package var queue: Spool? { spool }

    /// `true` while new mail for this endpoint skips the sync attempt (the endpoint keeps failing).
    package func circuitOpen(_ name: String) -> Bool {
        let now = clock.nowMilliseconds
        return state.withLock { $0.policies[name]?.circuitOpen(now: now) ?? false }
    }

    /// When the engine next takes up spool entry `id` (Unix milliseconds); `nil` when it is not scheduled.
    package func scheduledAttempt(_ id: String) -> Int64? { state.withLock { $0.queue.due(of: id) } }

    /// Entries scheduled for retry and in flight.
    package var scheduledCount: Int { state.withLock { $0.queue.count + $0.queue.inFlightCount } }

    /// Tags of the envelope recipients (plus-addressing), in order, unique.
    package static func tags(_ recipients: [String], delimiters: Set<Character>) -> [String] {
        var seen = Set<String>()
        return recipients.compactMap { RouteTable.tag(of: $0, delimiters: delimiters) }.filter {
            seen.insert($0).inserted
        }
    }

    // MARK: - Service

    /// Starts the threads, loads the spool, delivers due entries until cancelled; attempts in
    /// flight finish first, then the threads are released.
    package func run() async throws {
        let resources = Resources(
            client: WebhookClient(threads: threads),
            spoolThreads: NIOThreadPool(numberOfThreads: 16)
        )
        resources.spoolThreads.start()
        state.withLock { $0.resources = resources }
        do {
            if scheduling { try await loadSpool(resources) }
        } catch {
            await release(resources)
            started.open()  // deliveries waiting for the start are answered (not taken)
            throw error
        }
        started.open()
        let pruning = scheduling ? Task { await pruneJournal() } : nil
        let timing = Task { await timer.run(clock: clock) }
        await withTaskCancellationHandler {
            await schedule(resources)
        } onCancel: {
            doorbell.ring()
        }
        pruning?.cancel()
        // Late attempts still running finish (and record their outcome) before the threads go.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                state.stopping = true
                if state.lateAttempts == 0 { return true }
                state.drained = continuation
                return false
            }
            if done { continuation.resume() }
        }
        timing.cancel()
        await timing.value
        await release(resources)
    }

    private func release(_ resources: Resources) async {
        state.withLock { $0.resources = nil }
        await resources.client.shutdown()
        try? await resources.spoolThreads.shutdownGracefully()
    }

    /// Returns once ``run()`` has started the threads and loaded the spool.
    package func waitUntilRunning() async { await started.wait() }

    private func running() async -> Resources? {
        await started.wait()
        return state.withLock { $0.resources }
    }

    /// Runs blocking spool work on the engine's spool threads.
    private func onSpoolThread<T: Sendable>(
        _ resources: Resources,
        _ work: @escaping @Sendable () throws -> T
    ) async throws -> T {
        // Not cancelled with the caller (`runIfActive` would skip the work of a cancelled task):
        // an outcome being recorded while the engine stops is recorded, or the attempt would be
        // missing from the entry's history. No extra task: submitted straight to the pool.
        try await withCheckedThrowingContinuation { continuation in
            resources.spoolThreads.submit { state in
                guard case .active = state else {
                    continuation.resume(throwing: NIOThreadPoolError.ThreadPoolInactive())
                    return
                }
                continuation.resume(with: Result { try work() })
            }
        }
    }

    /// Runs `work` on a spool thread when `offLoop` (it reads a file), else right here.
    private func onSpoolThread<T: Sendable>(
        _ resources: Resources,
        if offLoop: Bool,
        _ work: @escaping @Sendable () throws -> T
    ) async throws -> T {
        offLoop ? try await onSpoolThread(resources, work) : try work()
    }

    /// What a message in delivery may hold in memory, per byte of it, until it is parsed: the
    /// bytes read for the parser and the texts it decodes.
    static let parseMemoryFactor = 2

    /// Parses a message once for all the endpoints it goes to, with the largest inline
    /// attachment limit among them; each endpoint shows its part of it. A message in a file is
    /// read on a pool thread within the memory budget, and the budget its texts still need
    /// (twice: parsed, and in each rendered payload) stays reserved while its attempts run.
    /// Returns no parse when parsing once saves nothing (one endpoint, message in memory) or the
    /// file cannot be read (each attempt then reports it).
    package func prepare(
        _ body: MessageBody,
        for endpoints: [WebhookEndpoint]
    ) async -> (parsed: ParsedMessage?, reservation: DeliveryMemory.Reservation?) {
        guard endpoints.count > 1 || body.isFile, let resources = await running() else { return (nil, nil) }
        let limit = MessagePayload.inlineLimit(for: endpoints.map(\.payload))
        var reservation: DeliveryMemory.Reservation? = nil
        if body.isFile {
            reservation = await memory.reserve(body.count * Self.parseMemoryFactor)
            guard reservation != nil else { return (nil, nil) }
        }
        let parsed = try? await onSpoolThread(resources, if: body.isFile) {
            ParsedMessage(parsing: try body.contents(), inlineAttachmentLimit: limit)
        }
        reservation?.shrink(to: 2 * (parsed?.memoryEstimate ?? 0))
        return (parsed, parsed == nil ? nil : reservation)
    }

    /// The message's ``DeliveryJournal/digest(mailFrom:body:)`` (a file is read on a pool
    /// thread); `nil` when it cannot be read (then the journal is not used for it).
    package func digest(mailFrom: String, body: MessageBody) async -> String? {
        guard let resources = await running() else { return nil }
        return try? await onSpoolThread(resources, if: body.isFile) {
            try DeliveryJournal.digest(mailFrom: mailFrom, body: body)
        }
    }

    /// Renders a spooled entry for a retry or a replay within the memory budget (a file is read
    /// and parsed on a pool thread). Returns the body and the bytes still held for it, to be
    /// released when its request ends.
    private func renderSpooled(
        _ endpoint: WebhookEndpoint,
        _ entry: Spool.Entry,
        delimiters: Set<Character>,
        _ resources: Resources
    ) async throws -> (body: RenderedBody, held: Int) {
        let cost = entry.body.count * Self.parseMemoryFactor
        guard await memory.acquire(cost) else { throw CancellationError() }
        let body: RenderedBody
        do {
            body = try await onSpoolThread(resources, if: entry.body.isFile) {
                try endpoint.render(spooled: entry.metadata, body: entry.body, delimiters: delimiters)
            }
        } catch {
            memory.release(cost)
            throw error
        }
        let held = min(cost, body.body.inMemoryCount)
        memory.release(cost - held)
        return (body, held)
    }

    // MARK: - After the final dot

    /// Delivers or queues the message for the recipients routed to `endpoint`: one disposition
    /// that applies to each of them.
    package func deliver(_ request: DeliveryRequest, to endpoint: WebhookEndpoint) async -> Disposition {
        let startedAt = clock.nowMilliseconds
        let envelope = request.envelope
        guard let resources = await running() else {
            return .deferred(webhookID: "-", reason: "webhook unavailable (shutting down)")
        }
        let webhookID: String
        do {
            webhookID = try await onSpoolThread(resources, if: request.body.isFile) {
                try MessagePayload.id(body: request.body, recipients: envelope.rcptTo, endpoint: endpoint.url)
            }
        } catch {
            logger.error("cannot read the message", metadata: ["error": "\(error)"])
            return .notTaken(webhookID: "-", reason: "cannot read the message (\(Self.shorten("\(error)", to: 100)))")
        }
        let metadata = Self.metadata(envelope, size: request.body.count, webhookID, endpoint, receivedAt: startedAt)
        let budget: Int64? = spool == nil ? nil : DeliveryClock.milliseconds(endpoint.syncBudget ?? settings.syncBudget)
        let deadline = startedAt + (budget ?? 60_000)

        let disposition: (Disposition, Int)
        let admission = state.withLock { $0.policies[endpoint.name]?.admitThroughBreaker(now: startedAt) ?? .closed }
        if case .open = admission {
            disposition = await queue(metadata, request.body, resources, attempt: nil, reason: "circuit open")
        } else if let wait = state.withLock({ state -> Int64? in
            guard var policy = state.policies[endpoint.name] else { return 0 }
            defer { state.policies[endpoint.name] = policy }
            return policy.reserveToken(now: startedAt, maxWait: deadline - startedAt)
        }) {
            if wait > 0 { try? await clock.sleep(untilMilliseconds: startedAt + wait) }
            if await acquireSlot(endpoint.name, deadline: deadline) {
                disposition = await attempt(
                    metadata,
                    request,
                    endpoint,
                    resources,
                    probe: admission == .probe,
                    deadline: budget == nil ? nil : deadline
                )
            } else {
                abandonProbe(endpoint.name, admission)
                let limit = state.withLock { $0.policies[endpoint.name]?.limits.maxInFlight ?? 0 }
                logger.warning(
                    "endpoint busy: message queued without an attempt",
                    metadata: ["endpoint": "\(endpoint.name)", "in_flight": "\(limit)"]
                )
                disposition = await queue(
                    metadata,
                    request.body,
                    resources,
                    attempt: nil,
                    reason: "endpoint busy: \(limit) requests in flight"
                )
            }
        } else {
            abandonProbe(endpoint.name, admission)
            disposition = await queue(
                metadata,
                request.body,
                resources,
                attempt: nil,
                reason: "rate limit \(endpoint.rateLimit?.description ?? "")"
            )
        }
        let delay = Double(clock.nowMilliseconds - startedAt) / 1000
        for recipient in envelope.rcptTo {
            metrics.recipient(disposition.0.label)
            logger.info(
                "delivery",
                metadata: [
                    "id": "\(webhookID)", "spool_id": "\(metadata.id)", "queue_id": "\(envelope.client.ident ?? "-")",
                    "rcpt": "\(recipient)", "endpoint": "\(endpoint.name)", "route": "\(request.route ?? "-")",
                    "status": "\(disposition.0.label)", "http": "\(disposition.1)", "attempt": "1",
                    "size": "\(request.body.count)", "delay": "\(delay)",
                ]
            )
        }
        return disposition.0
    }

    // MARK: - Journal

    /// The recipients of `recipients` that `endpoint` already took for the message `digest`
    /// within the journal window (delivered, or queued in the spool). A journal that cannot be
    /// read answers "none" (the message is sent again, with its webhook id: a duplicate at worst).
    package func alreadyTaken(
        digest: String,
        endpoint: String,
        recipients: [String]
    ) async
        -> [String: DeliveryJournal.Taken]
    {
        guard let journal else { return [:] }
        let since = clock.nowMilliseconds - DeliveryClock.milliseconds(settings.journalWindow)
        do {
            return try await journal.taken(digest: digest, endpoint: endpoint, recipients: recipients, since: since)
        } catch {
            metrics.journalError(operation: "read")
            logger.error("cannot read the delivery journal", metadata: ["error": "\(error)"])
            return [:]
        }
    }

    /// Records that `endpoint` took `request`'s recipients (delivered or queued) — for a message
    /// the MTA will retry in part (the caller knows: another recipient got a 4xx), so that the
    /// retry does not send it to this endpoint again. Awaited before the replies go out.
    package func remember(_ disposition: Disposition, _ request: DeliveryRequest, _ endpoint: WebhookEndpoint) async {
        guard let journal, let digest = request.digest else { return }
        let spoolID: String?
        switch disposition {
        case .delivered: spoolID = nil
        case .queued(let id, _, _): spoolID = id
        case .deferred, .bounced, .notTaken: return
        }
        do {
            try await journal.record(
                digest: digest,
                endpoint: endpoint.name,
                recipients: request.envelope.rcptTo,
                webhookID: disposition.webhookID,
                spoolID: spoolID,
                at: clock.nowMilliseconds
            )
        } catch {
            metrics.journalError(operation: "write")
            logger.error(
                "cannot write the delivery journal (an MTA retry of this message may send it again)",
                metadata: ["id": "\(disposition.webhookID)", "error": "\(error)"]
            )
        }
    }

    /// Forgets journal rows older than the window, now and every hour, until cancelled.
    private func pruneJournal() async {
        guard let journal else { return }
        while !Task.isCancelled {
            let before = clock.nowMilliseconds - DeliveryClock.milliseconds(settings.journalWindow)
            do {
                let removed = try await journal.prune(before: before)
                if removed > 0 { logger.debug("journal pruned", metadata: ["rows": "\(removed)"]) }
            } catch {
                metrics.journalError(operation: "prune")
                logger.error("cannot prune the delivery journal", metadata: ["error": "\(error)"])
            }
            try? await clock.sleep(untilMilliseconds: clock.nowMilliseconds + 3_600_000)
        }
    }

    private static func metadata(
        _ envelope: MailEnvelope,
        size: Int,
        _ webhookID: String,
        _ endpoint: WebhookEndpoint,
        receivedAt: Int64
    ) -> SpoolMetadata {
        let client = envelope.client
        var metadata = SpoolMetadata(
            id: SpoolID.make(milliseconds: receivedAt, random: UInt32.random(in: 0...UInt32.max)),
            webhookID: webhookID,
            endpoint: EndpointMasking.url(endpoint.url),
            mailFrom: envelope.mailFrom,
            rcptTo: envelope.rcptTo,
            lhlo: envelope.lhlo,
            smtpUTF8: envelope.smtpUTF8,
            body: envelope.body,
            client: [
                ("name", client.name), ("addr", client.addr), ("port", client.port), ("proto", client.proto),
                ("helo", client.helo), ("ident", client.ident), ("source", client.source),
            ]
            .reduce(into: [:]) { result, pair in if let value = pair.1 { result[pair.0] = value } },
            receivedAtMilliseconds: receivedAt,
            size: size,
            endpointName: endpoint.name,
            format: endpoint.format.rawValue
        )
        metadata.requirements = EndpointRequirements(endpoint).stored
        return metadata
    }

    /// The sync attempt: render, POST within the budget, classify; queue when it cannot finish
    /// now. The slot is held until the request ends, also when it outlives the budget.
    private func attempt(
        _ metadata: SpoolMetadata,
        _ request: DeliveryRequest,
        _ endpoint: WebhookEndpoint,
        _ resources: Resources,
        probe: Bool,
        deadline: Int64?
    ) async -> (Disposition, Int) {
        let webhookID = metadata.webhookID
        // A message in a file is read and parsed within the memory budget (one in memory is the
        // LMTP server's to count), unless its reservation covers it already; what the request
        // keeps in memory stays counted until it ends.
        let cost = request.body.isFile && request.reservation == nil ? request.body.count * Self.parseMemoryFactor : 0
        guard await memory.acquire(cost) else {
            releaseSlot(endpoint.name, retry: false)
            if probe { abandonProbe(endpoint.name, .probe) }
            return await queue(metadata, request.body, resources, attempt: nil, reason: "shutting down")
        }
        let body: RenderedBody
        do {
            let rendered = try await onSpoolThread(resources, if: request.body.isFile) {
                try endpoint.render(
                    webhookID: webhookID,
                    receivedAt: UnixTime(milliseconds: metadata.receivedAtMilliseconds),
                    envelope: request.envelope,
                    body: request.body,
                    parsed: request.parsed,
                    tags: request.tags,
                    route: request.route
                )
            }
            if !rendered.message.problems.isEmpty {
                logger.debug(
                    "message parsed with problems",
                    metadata: [
                        "id": "\(webhookID)", "problems": "\(rendered.message.problems.joined(separator: "; "))",
                    ]
                )
            }
            body = rendered.body
        } catch {
            memory.release(cost)
            releaseSlot(endpoint.name, retry: false)
            if probe { abandonProbe(endpoint.name, .probe) }
            logger.error(
                "cannot render the message for this endpoint",
                metadata: ["id": "\(webhookID)", "endpoint": "\(endpoint.name)", "error": "\(error)"]
            )
            return await queue(metadata, request.body, resources, attempt: nil, reason: "cannot render: \(error)")
        }
        let kept = min(cost, body.body.inMemoryCount)
        memory.release(cost - kept)
        let reservation = request.reservation
        let post = InFlightRequest()
        resources.client.post(
            endpoint.request(webhookID: webhookID, body: body, nowMilliseconds: clock.nowMilliseconds)
        ) { response in
            self.memory.release(kept)
            self.releaseSlot(endpoint.name, retry: false)
            withExtendedLifetime(reservation) {}  // a late attempt holds its message's share too
            post.finish(response)
        }
        guard let response = await post.response(before: deadline, timer: timer) else {
            return await queueLate(metadata, request.body, post, endpoint, resources)
        }
        let outcome = observe(response, endpoint: endpoint, kind: "sync")
        switch outcome {
        case .delivered:
            return (.delivered(webhookID: webhookID), response.status)
        case .permanent(let status, let reason):
            if status == 410 {
                logger.warning("endpoint is gone (HTTP 410)", metadata: ["endpoint": "\(endpoint.name)"])
            }
            return (.bounced(webhookID: webhookID, status: status, reason: reason), response.status)
        case .transient(let reason):
            guard spool != nil else {
                return (
                    .deferred(webhookID: webhookID, reason: "webhook failed (\(Self.shorten(reason, to: 120)))"),
                    response.status
                )
            }
            return await queue(
                metadata,
                request.body,
                resources,
                attempt: self.record(response, kind: "sync"),
                reason: reason
            )
        }
    }

    /// The budget ran out while the attempt runs: the entry is queued *claimed*, so nobody else
    /// (a retry, `spool replay`) sends it while this attempt may still succeed; the attempt's
    /// outcome is recorded when it ends.
    private func queueLate(
        _ metadata: SpoolMetadata,
        _ body: MessageBody,
        _ post: InFlightRequest,
        _ endpoint: WebhookEndpoint,
        _ resources: Resources
    ) async -> (Disposition, Int) {
        let reason = "no answer within the sync budget"
        let (disposition, claim) = await enqueue(metadata, body, resources, attempt: nil, reason: reason, claimed: true)
        guard let claim else {
            // Not queued (451): the attempt goes on; its outcome only feeds the breaker.
            Task {
                let response = await post.response()
                _ = self.observe(response, endpoint: endpoint, kind: "sync")
            }
            return (disposition, 0)
        }
        state.withLock { state in
            state.queue.take(metadata.id)
            state.lateAttempts += 1
        }
        Task {
            let response = await post.response()
            let outcome = self.observe(response, endpoint: endpoint, kind: "sync")
            let next = await self.recordOutcome(
                metadata,
                attempt: self.record(response, kind: "sync"),
                outcome: outcome,
                retryAfter: response.retryAfterSeconds,
                resources
            )
            withExtendedLifetime(claim) {}
            let drained = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.queue.finish(metadata.id, rescheduleAt: next.due, work: next.work)
                state.lateAttempts -= 1
                guard state.lateAttempts == 0, let drained = state.drained else { return nil }
                state.drained = nil
                return drained
            }
            drained?.resume()
            self.doorbell.ring()
        }
        return (disposition, 0)
    }

    /// Writes the entry durably: `queued` or, when the spool cannot take it, `notTaken`.
    private func queue(
        _ metadata: SpoolMetadata,
        _ body: MessageBody,
        _ resources: Resources,
        attempt: SpoolState.Attempt?,
        reason: String
    ) async -> (Disposition, Int) {
        let (disposition, _) = await enqueue(
            metadata,
            body,
            resources,
            attempt: attempt,
            reason: reason,
            claimed: false
        )
        return (disposition, attempt?.status ?? 0)
    }

    private func enqueue(
        _ metadata: SpoolMetadata,
        _ body: MessageBody,
        _ resources: Resources,
        attempt: SpoolState.Attempt?,
        reason: String,
        claimed: Bool
    ) async -> (Disposition, Spool.Claim?) {
        guard let spool else {
            return (
                .deferred(
                    webhookID: metadata.webhookID,
                    reason: "webhook unavailable (\(Self.shorten(reason, to: 100)))"
                ), nil
            )
        }
        let now = clock.nowMilliseconds
        var entryState = SpoolState(nextAttemptMilliseconds: now)
        if let attempt { entryState.append(attempt) }
        if case .retry(let at) = settings.retry.afterTransientFailure(
            attempts: 1,
            createdAtMilliseconds: metadata.receivedAtMilliseconds,
            nowMilliseconds: now,
            retryAfterSeconds: nil,
            random: Double.random(in: 0..<1)
        ) {
            entryState.nextAttemptMilliseconds = at
        }
        let claim: Spool.Claim?
        do {
            claim = try await onSpoolThread(resources) { [entryState] in
                if claimed { return try spool.enqueueClaimed(metadata, body: body, state: entryState) }
                try spool.enqueue(metadata, body: body, state: entryState)
                return nil
            }
        } catch {
            logger.error(
                "cannot queue message: the sender keeps it",
                metadata: ["id": "\(metadata.webhookID)", "error": "\(error)"]
            )
            return (
                .notTaken(
                    webhookID: metadata.webhookID,
                    reason: "cannot queue message (\(Self.shorten("\(error)", to: 100)))"
                ), nil
            )
        }
        state.withLock {
            $0.queue.schedule(
                metadata.id,
                endpoint: metadata.endpointName ?? metadata.endpoint,
                due: entryState.nextAttemptMilliseconds
            )
        }
        doorbell.ring()
        return (
            .queued(
                spoolID: metadata.id,
                webhookID: metadata.webhookID,
                reason: Self.shorten(reason, to: 80)
            ), claim
        )
    }

    // MARK: - Slots

    /// Takes a slot of the endpoint, waiting in line until `deadline`; `false` when none came free.
    private func acquireSlot(_ name: String, deadline: Int64) async -> Bool {
        let fast: Bool? = state.withLock { state in
            guard var policy = state.policies[name] else { return true }  // reloaded away: let it go
            if state.waiters[name, default: []].isEmpty, policy.takeSlot(retry: false) {
                state.policies[name] = policy
                return true
            }
            return deadline <= clock.nowMilliseconds ? false : nil
        }
        if let fast { return fast }
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timeout = Task {
            try await clock.sleep(untilMilliseconds: deadline)
            self.giveUpWaiting(name, id)
        }
        defer { timeout.cancel() }
        return await withCheckedContinuation { continuation in
            let granted: Bool = state.withLock { state in
                if var policy = state.policies[name], state.waiters[name, default: []].isEmpty,
                    policy.takeSlot(retry: false)
                {
                    state.policies[name] = policy
                    return true
                }
                state.waiters[name, default: []].append(SlotWaiter(id: id, continuation: continuation))
                return false
            }
            if granted { continuation.resume(returning: true) }
        }
    }

    private func giveUpWaiting(_ name: String, _ id: UInt64) {
        let waiter: SlotWaiter? = state.withLock { state in
            guard let index = state.waiters[name]?.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters[name]!.remove(at: index)
        }
        waiter?.continuation.resume(returning: false)
    }

    /// Frees a slot: a sync attempt waiting in line gets it first, else the scheduler may use it.
    private func releaseSlot(_ name: String, retry: Bool) {
        let (next, queued) = state.withLock { state -> (SlotWaiter?, Bool) in
            let queued = state.queue.count > 0
            guard var policy = state.policies[name] else { return (nil, queued) }
            defer { state.policies[name] = policy }
            if var line = state.waiters[name], !line.isEmpty {
                let first = line.removeFirst()
                state.waiters[name] = line.isEmpty ? nil : line
                policy.passSlot(fromRetry: retry)
                return (first, queued)
            }
            policy.releaseSlot(retry: retry)
            return (nil, queued)
        }
        if let next {
            next.continuation.resume(returning: true)
        } else if queued {
            doorbell.ring()  // only the scheduler's entries can use it (no wake-up per message)
        }
    }

    private func abandonProbe(_ name: String, _ admission: EndpointPolicy.BreakerAdmission) {
        guard admission == .probe else { return }
        let now = clock.nowMilliseconds
        state.withLock { $0.policies[name]?.abandonProbe(now: now) }
    }

    /// Classifies an answer, feeds the breaker, counts it and warns when it was slow.
    private func observe(_ response: WebhookResponse, endpoint: WebhookEndpoint, kind: String) -> DeliveryOutcome {
        let outcome = DeliveryOutcome.classify(response, rule: endpoint.successRule)
        let now = clock.nowMilliseconds
        let transient: Bool
        if case .transient = outcome { transient = true } else { transient = false }
        let (change, slow) = state.withLock { state -> (EndpointPolicy.BreakerChange?, Bool) in
            guard var policy = state.policies[endpoint.name] else { return (nil, false) }
            defer { state.policies[endpoint.name] = policy }
            return (
                policy.record(transientFailure: transient, now: now),
                policy.shouldWarnSlow(seconds: response.seconds, now: now)
            )
        }
        if change == .opened {
            logger.warning(
                "endpoint keeps failing: circuit open, new mail goes straight to the spool",
                metadata: ["endpoint": "\(endpoint.name)"]
            )
        }
        if change != nil { doorbell.ring() }
        metrics.request(endpoint: endpoint.name, outcome: outcome, kind: kind, seconds: response.seconds)
        if slow {
            logger.warning(
                "slow endpoint",
                metadata: [
                    "endpoint": "\(endpoint.name)", "seconds": "\(response.seconds)", "http": "\(response.status)",
                ]
            )
        }
        return outcome
    }

    private func record(_ response: WebhookResponse, kind: String) -> SpoolState.Attempt {
        SpoolState.Attempt(
            atMilliseconds: clock.nowMilliseconds,
            status: response.status,
            error: response.error.map { "\($0.kind.rawValue): \($0.message)" },
            snippet: String(response.snippet.prefix(200)),
            kind: kind
        )
    }

    // MARK: - The spool at start

    private func loadSpool(_ resources: Resources) async throws {
        guard let spool else { return }
        let endpoints = state.withLock { $0.endpoints }
        let (report, items) = try await onSpoolThread(resources) { () -> (Spool.RecoveryReport, [RetryQueue.Item]) in
            let report = spool.recover()
            var items: [RetryQueue.Item] = []
            for id in spool.ids() {
                let metadata = spool.metadata(id)
                let name =
                    metadata?.endpointName
                    ?? metadata.flatMap { entry in endpoints.values.first { $0.url == entry.endpoint }?.name }
                    ?? metadata?.endpoint ?? "-"
                items.append(
                    RetryQueue.Item(
                        id: id,
                        endpoint: name,
                        due: spool.state(id)?.nextAttemptMilliseconds ?? 0,
                        work: .attempt
                    )
                )
            }
            return (report, items)
        }
        state.withLock { state in
            for item in items { state.queue.schedule(item.id, endpoint: item.endpoint, due: item.due) }
        }
        for damaged in report.quarantined {
            logger.error("damaged spool entry moved to quarantine", metadata: ["entry": "\(damaged)"])
        }
        for unreadable in report.unreadable {
            logger.error(
                "spool entry unreadable at start: kept, tried again later",
                metadata: ["entry": "\(unreadable)"]
            )
        }
        let unknown = Dictionary(grouping: items.filter { endpoints[$0.endpoint] == nil }, by: \.endpoint)
        for (name, entries) in unknown.sorted(by: { $0.key < $1.key }) {
            logger.warning(
                "queued messages for an endpoint that is not configured: kept, delivered once a reload adds it back",
                metadata: ["endpoint": "\(name)", "entries": "\(entries.count)"]
            )
        }
        logger.info(
            "spool loaded",
            metadata: [
                "path": "\(spool.path)", "entries": "\(report.entries)",
                "tmp_removed": "\(report.removedTemporaryFiles)",
            ]
        )
    }

    // MARK: - Retries

    /// Hands due entries to attempts as the policies allow, and sleeps until the next due time or
    /// event; returns when cancelled, after the attempts it started have finished.
    private func schedule(_ resources: Resources) async {
        guard spool != nil, scheduling else {
            while !Task.isCancelled { await doorbell.wait(untilMilliseconds: nil, clock: clock) }
            return
        }
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let now = clock.nowMilliseconds
                let limit = settings.retryConcurrency
                let (batch, wake) = state.withLock { state in
                    state.queue.nextBatch(now: now, policies: &state.policies, retryLimit: limit)
                }
                for item in batch { group.addTask { await self.work(on: item, resources) } }
                if batch.isEmpty { await doorbell.wait(untilMilliseconds: wake, clock: clock) }
            }
        }
    }

    /// What to do with an entry next: when (`nil`: it is gone from the queue) and which work.
    private struct Next: Sendable {
        var due: Int64?
        var work: RetryQueue.Work = .attempt
        static let gone = Next(due: nil)
    }

    private func work(on item: RetryQueue.Item, _ resources: Resources) async {
        let next: Next
        switch item.work {
        case .attempt:
            next = await retry(item, resources)
        case .complete, .deadLetter:
            next = await finishWork(item, resources)
        }
        state.withLock { $0.queue.finish(item.id, rescheduleAt: next.due, work: next.work) }
        doorbell.ring()
    }

    /// Backoff after a spool error on an entry: 1 s, 2 s, 4 s … 5 min.
    private func spoolErrorBackoff(_ id: String, _ operation: String, _ error: any Error) -> Int64 {
        let count = state.withLock { state -> Int in
            state.spoolErrors[id, default: 0] += 1
            return state.spoolErrors[id]!
        }
        let delay = min(300_000, Int64(1000) << min(count - 1, 20))
        metrics.spoolError(operation: operation)
        logger.error(
            "spool error: entry kept, tried again later",
            metadata: [
                "spool_id": "\(id)", "operation": "\(operation)", "error": "\(error)",
                "retry_in": "\(delay / 1000)s", "errors": "\(count)",
            ]
        )
        return clock.nowMilliseconds + delay
    }

    private func spoolWorked(_ id: String) { state.withLock { _ = $0.spoolErrors.removeValue(forKey: id) } }

    /// A retry of a scheduled entry. The scheduler took a slot (and token) of the endpoint.
    private func retry(_ item: RetryQueue.Item, _ resources: Resources) async -> Next {
        guard let spool else { return .gone }
        let id = item.id
        let gaveUp: @Sendable () -> Void = {
            self.releaseSlot(item.endpoint, retry: true)
            if item.probe { self.abandonProbe(item.endpoint, .probe) }
        }
        let claimed: (Spool.Claim, Spool.Entry)
        do {
            claimed = try await onSpoolThread(resources) { () -> (Spool.Claim, Spool.Entry) in
                let claim = try spool.claim(id)
                return (claim, try spool.read(id))
            }
        } catch let error as SpoolError where error.kind == .locked {
            gaveUp()
            return Next(due: clock.nowMilliseconds + 1_000)  // `spool replay` has it
        } catch let error as SpoolError where error.kind == .notFound {
            gaveUp()
            return .gone  // completed or dropped by someone else
        } catch let error as SpoolError where error.kind == .damaged {
            gaveUp()
            return await quarantine(id, error, resources)
        } catch {
            gaveUp()
            return Next(due: spoolErrorBackoff(id, "read", error))
        }
        spoolWorked(id)
        let (claim, entry) = claimed
        defer { withExtendedLifetime(claim) {} }
        if entry.state.nextAttemptMilliseconds > clock.nowMilliseconds + 1_000 {
            gaveUp()  // rescheduled by someone else (a replay recorded an attempt)
            return Next(due: entry.state.nextAttemptMilliseconds)
        }
        let (endpoint, delimiters) = state.withLock { ($0.endpoints[item.endpoint], $0.delimiters) }
        guard let endpoint else {
            gaveUp()
            return Next(due: clock.nowMilliseconds)  // reloaded away: waits (unconfigured) until it is back
        }
        let response: WebhookResponse
        do {
            let (body, held) = try await renderSpooled(endpoint, entry, delimiters: delimiters, resources)
            defer { memory.release(held) }
            response = await resources.client.post(
                endpoint.request(
                    webhookID: entry.metadata.webhookID,
                    body: body,
                    nowMilliseconds: clock.nowMilliseconds
                )
            )
        } catch {
            response = WebhookResponse(
                status: 0,
                error: WebhookTransportError(kind: .other, message: "cannot render: \(error)")
            )
        }
        releaseSlot(endpoint.name, retry: true)
        let outcome = observe(response, endpoint: endpoint, kind: "retry")
        return await recordOutcome(
            entry.metadata,
            attempt: record(response, kind: "retry"),
            outcome: outcome,
            retryAfter: response.retryAfterSeconds,
            resources
        )
    }

    private func quarantine(_ id: String, _ damage: SpoolError, _ resources: Resources) async -> Next {
        guard let spool else { return .gone }
        do {
            try await onSpoolThread(resources) { try spool.quarantine(id) }
        } catch {
            return Next(due: spoolErrorBackoff(id, "quarantine", error))
        }
        spoolWorked(id)
        logger.error(
            "damaged spool entry moved to quarantine/; it will not be retried",
            metadata: ["spool_id": "\(id)", "error": "\(damage)"]
        )
        metrics.deadLettered(endpoint: "-", reason: "damaged")
        return .gone
    }

    /// Applies an attempt's outcome to the entry (claimed by the caller): complete, reschedule
    /// or dead-letter. A spool error keeps the entry scheduled — for finishing what the outcome
    /// decided (never sending a delivered entry again) or for the next attempt.
    private func recordOutcome(
        _ metadata: SpoolMetadata,
        attempt: SpoolState.Attempt,
        outcome: DeliveryOutcome,
        retryAfter: Int?,
        _ resources: Resources
    ) async -> Next {
        guard let spool else { return .gone }
        let id = metadata.id
        let fields: Logger.Metadata = [
            "id": "\(metadata.webhookID)", "spool_id": "\(id)", "http": "\(attempt.status)",
            "attempt": "\(attempt.kind)",
        ]
        switch outcome {
        case .delivered:
            do { try await onSpoolThread(resources) { try spool.complete(id) } } catch {
                return Next(due: spoolErrorBackoff(id, "complete", error), work: .complete)
            }
            spoolWorked(id)
            logger.info("delivery", metadata: fields.merging(["status": "delivered"]) { $1 })
            return .gone
        case .permanent(_, let reason):
            return await deadLetter(metadata, attempt: attempt, reason: reason, label: "refused", resources)
        case .transient(let reason):
            let policy = settings.retry
            let random = Double.random(in: 0..<1)
            let decision: Result<(Int64, Int), any Error>
            do {
                decision = .success(
                    try await onSpoolThread(resources) { () -> (Int64, Int) in
                        var state = spool.state(id) ?? SpoolState(nextAttemptMilliseconds: 0)
                        state.append(attempt)
                        switch policy.afterTransientFailure(
                            attempts: state.attemptCount,
                            createdAtMilliseconds: metadata.receivedAtMilliseconds,
                            nowMilliseconds: attempt.atMilliseconds,
                            retryAfterSeconds: retryAfter,
                            random: random
                        ) {
                        case .retry(let at):
                            state.nextAttemptMilliseconds = at
                            try spool.writeState(id, state)
                            return (at, state.attemptCount)
                        case .deadLetter:
                            return (-1, state.attemptCount)
                        }
                    }
                )
            } catch {
                decision = .failure(error)
            }
            switch decision {
            case .success((let at, let count)) where at >= 0:
                spoolWorked(id)
                logger.info(
                    "delivery",
                    metadata: fields.merging(["status": "deferred", "attempt": "\(count)", "reason": "\(reason)"]) {
                        $1
                    }
                )
                return Next(due: at)
            case .success:
                let expired = settings.retry.afterTransientFailure(
                    attempts: Int.max / 2,
                    createdAtMilliseconds: metadata.receivedAtMilliseconds,
                    nowMilliseconds: attempt.atMilliseconds,
                    retryAfterSeconds: nil,
                    random: 0
                )
                var because = "gave up: older than \(settings.retry.maxAgeMilliseconds / 1000) s"
                if case .deadLetter(let text) = expired { because = text }
                return await deadLetter(metadata, attempt: attempt, reason: because, label: "expired", resources)
            case .failure(let error):
                // The attempt is not on record; the entry stays scheduled, tried again after a backoff.
                return Next(due: spoolErrorBackoff(id, "state", error))
            }
        }
    }

    private func deadLetter(
        _ metadata: SpoolMetadata,
        attempt: SpoolState.Attempt?,
        reason: String,
        label: String,
        _ resources: Resources
    ) async -> Next {
        guard let spool else { return .gone }
        let id = metadata.id
        do {
            try await onSpoolThread(resources) {
                var state = spool.state(id) ?? SpoolState(nextAttemptMilliseconds: 0)
                if let attempt { state.append(attempt) }
                state.deadReason = reason
                try spool.deadLetter(id, state: state)
            }
        } catch {
            return Next(due: spoolErrorBackoff(id, "dead-letter", error), work: .deadLetter(reason: reason))
        }
        spoolWorked(id)
        metrics.deadLettered(endpoint: metadata.endpointName ?? metadata.endpoint, reason: label)
        logger.error(
            label == "refused" ? "dead letter: endpoint refused a queued message" : "dead letter: gave up",
            metadata: ["id": "\(metadata.webhookID)", "spool_id": "\(id)", "reason": "\(reason)"]
        )
        return .gone
    }

    /// Finishing work left by a spool error: remove a delivered entry, move a dead one.
    private func finishWork(_ item: RetryQueue.Item, _ resources: Resources) async -> Next {
        guard let spool else { return .gone }
        let id = item.id
        switch item.work {
        case .complete:
            do { try await onSpoolThread(resources) { try spool.complete(id) } } catch {
                return Next(due: spoolErrorBackoff(id, "complete", error), work: .complete)
            }
            spoolWorked(id)
            return .gone
        case .deadLetter(let reason):
            guard let metadata = try? await onSpoolThread(resources, { spool.metadata(id) }) else {
                return .gone  // gone meanwhile
            }
            return await deadLetter(metadata, attempt: nil, reason: reason, label: "expired", resources)
        case .attempt:
            return Next(due: item.due)
        }
    }

    // MARK: - Replays

    /// What a replay of one entry came to.
    package enum ReplayOutcome: Sendable, Equatable {
        case delivered
        /// A transient failure: the entry stays (rescheduled; a dead letter stays dead).
        case failing(reason: String)
        /// The endpoint refused it: now (or still) a dead letter.
        case dead(reason: String)
        /// Someone is delivering it right now (a retry, a late attempt, another replay).
        case busy
        /// No such entry.
        case missing
        /// Not sent: it would go out with less than its endpoint sends, or cannot be read.
        case refused(reason: String)
    }

    /// Delivers one entry now — a queued one, or a dead letter with `dead` — through the same
    /// path as a retry: claimed while it runs, its endpoint's current configuration (format,
    /// headers, signing, success rule), a request slot and a rate-limit token (the circuit
    /// breaker is not asked: a replay is an operator's decision), and the outcome recorded like
    /// any attempt's. `toURL` sends it elsewhere, in its endpoint's format and signed, but
    /// without the endpoint's headers (they may carry credentials for the original host).
    /// `checkRequirements`: refuse an entry whose endpoint here lacks what it was queued with
    /// (a replay outside the daemon, from another configuration file). An entry whose endpoint
    /// is not configured here goes only if it needs nothing this engine lacks (a plain JSON
    /// endpoint; `signer` for one that was signed).
    package func replay(
        _ id: String,
        dead: Bool,
        toURL: String? = nil,
        checkRequirements: Bool = false,
        signer: WebhookSigner? = nil
    ) async -> ReplayOutcome {
        guard let spool, let resources = await running() else { return .refused(reason: "the engine is not running") }
        if state.withLock({ $0.queue.isInFlight(id) }) { return .busy }
        let claimed: (Spool.Claim, Spool.Entry)
        do {
            claimed = try await onSpoolThread(resources) { () -> (Spool.Claim, Spool.Entry) in
                let claim = try spool.claim(id, dead: dead)
                return (claim, try spool.read(id))
            }
        } catch let error as SpoolError {
            switch error.kind {
            case .locked: return .busy
            case .notFound: return .missing
            default: return .refused(reason: "\(error)")
            }
        } catch {
            return .refused(reason: "\(error)")
        }
        let (claim, entry) = claimed
        defer { withExtendedLifetime(claim) {} }
        let metadata = entry.metadata
        let name = metadata.endpointName ?? metadata.endpoint
        let (configured, delimiters) = state.withLock { state in
            (
                state.endpoints[name] ?? state.endpoints.values.first { $0.url == metadata.endpoint },
                state.delimiters
            )
        }
        var endpoint: WebhookEndpoint
        if let configured {
            if checkRequirements, let needed = EndpointRequirements(stored: metadata.requirements) {
                let missing = needed.missing(in: configured)
                if !missing.isEmpty {
                    return .refused(
                        reason:
                            "endpoint '\(name)' here lacks what the entry was queued with: \(missing.joined(separator: "; "))"
                    )
                }
            }
            endpoint = configured
        } else {
            // Not configured here: only an entry whose endpoint was a plain JSON one (no headers,
            // the default success rule, a URL without secrets) can go as it would have gone.
            guard let needed = EndpointRequirements(stored: metadata.requirements) else {
                return .refused(
                    reason:
                        "endpoint '\(name)' is not configured here, and the entry (written before 0.2) does not record what it needs"
                )
            }
            let plain = WebhookEndpoint(
                name: name,
                url: toURL ?? metadata.endpoint,
                signer: signer ?? WebhookSigner.none
            )
            var missing = needed.missing(in: plain)
            if toURL == nil && (needed.urlHasSecrets || EndpointMasking.url(metadata.endpoint) != metadata.endpoint) {
                missing.append("its URL (it carries credentials, which the spool does not keep)")
            }
            guard missing.isEmpty else {
                return .refused(
                    reason:
                        "endpoint '\(name)' is not configured here; the entry needs \(missing.joined(separator: "; "))"
                )
            }
            endpoint = plain
        }
        if let toURL {
            endpoint.url = toURL
            endpoint.headers = []
        }
        // Into the engine's books: the scheduler does not take it up while this runs.
        let taken = state.withLock { state -> Bool in
            guard state.queue.due(of: id) != nil, !state.queue.isInFlight(id) else { return false }
            state.queue.take(id)
            return true
        }
        let finish: @Sendable (Next) -> Void = { next in
            guard taken else { return }
            self.state.withLock { $0.queue.finish(id, rescheduleAt: next.due, work: next.work) }
            self.doorbell.ring()
        }
        let wait = state.withLock { state -> Int64 in
            guard var policy = state.policies[endpoint.name] else { return 0 }
            defer { state.policies[endpoint.name] = policy }
            return policy.reserveToken(now: clock.nowMilliseconds, maxWait: nil) ?? 0
        }
        if wait > 0 { try? await clock.sleep(untilMilliseconds: clock.nowMilliseconds + wait) }
        guard await acquireSlot(endpoint.name, deadline: clock.nowMilliseconds + 60_000) else {
            finish(Next(due: state.withLock { _ in entry.state.nextAttemptMilliseconds }))
            return .busy
        }
        let response: WebhookResponse
        do {
            let (body, held) = try await renderSpooled(endpoint, entry, delimiters: delimiters, resources)
            defer { memory.release(held) }
            response = await resources.client.post(
                endpoint.request(webhookID: metadata.webhookID, body: body, nowMilliseconds: clock.nowMilliseconds)
            )
        } catch {
            response = WebhookResponse(
                status: 0,
                error: WebhookTransportError(kind: .other, message: "cannot render: \(error)")
            )
        }
        releaseSlot(endpoint.name, retry: false)
        let outcome = observe(response, endpoint: endpoint, kind: "replay")
        let attempt = record(response, kind: "replay")
        if !entry.isDead {
            let next = await recordOutcome(
                metadata,
                attempt: attempt,
                outcome: outcome,
                retryAfter: response.retryAfterSeconds,
                resources
            )
            finish(next)
            switch outcome {
            case .delivered: return .delivered
            case .transient(let reason): return next.due == nil ? .dead(reason: reason) : .failing(reason: reason)
            case .permanent(_, let reason): return .dead(reason: reason)
            }
        }
        // A dead letter: removed once delivered, else it stays dead with the attempt on record.
        var deadState = entry.state
        deadState.append(attempt)
        if case .permanent(_, let reason) = outcome { deadState.deadReason = reason }
        do {
            try await onSpoolThread(resources) { [deadState] in
                if case .delivered = outcome { try spool.drop(id) } else { try spool.writeDeadState(id, deadState) }
            }
        } catch {
            metrics.spoolError(operation: "state")
            logger.error(
                "spool error after a replay of a dead letter",
                metadata: ["spool_id": "\(id)", "error": "\(error)"]
            )
        }
        switch outcome {
        case .delivered: return .delivered
        case .transient(let reason): return .failing(reason: reason)
        case .permanent(_, let reason): return .dead(reason: reason)
        }
    }

    /// Waits on the engine's clock (paced replays).
    package func pause(milliseconds: Int64) async {
        try? await clock.sleep(untilMilliseconds: clock.nowMilliseconds + milliseconds)
    }

    /// Drops an entry (queued or dead) for good, unless someone is delivering it.
    package func drop(_ id: String) async -> ReplayOutcome {
        guard let spool, let resources = await running() else { return .refused(reason: "the engine is not running") }
        if state.withLock({ $0.queue.isInFlight(id) }) { return .busy }
        do {
            try await onSpoolThread(resources) {
                do {
                    let claim = try spool.claim(id)
                    try spool.drop(id)
                    withExtendedLifetime(claim) {}
                } catch let error as SpoolError where error.kind == .notFound {
                    let claim = try spool.claim(id, dead: true)
                    try spool.drop(id)
                    withExtendedLifetime(claim) {}
                }
            }
        } catch let error as SpoolError {
            switch error.kind {
            case .locked: return .busy
            case .notFound: return .missing
            default: return .refused(reason: "\(error)")
            }
        } catch {
            return .refused(reason: "\(error)")
        }
        state.withLock { $0.queue.remove(id) }
        return .delivered
    }

    static func shorten(_ text: String, to limit: Int) -> String {
        let clean = String(text.map { $0.isNewline || $0 == "\r" ? " " : $0 })
        return clean.count <= limit ? clean : String(clean.prefix(limit)) + "…"
    }
}
