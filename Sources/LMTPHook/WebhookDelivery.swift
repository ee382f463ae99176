import LMTPCore
import Logging
import MailCore
import NIOPosix
import Spool
import Synchronization
import Targets
import WebhookClient

/// Delivery with durability: after the final dot each message gets one webhook attempt within the
/// sync budget. 2xx → `250 delivered`; a permanent answer (other 4xx, 3xx) → 5xx so the MTA
/// bounces; a transient one (timeout, connection error, 408/425/429/5xx) or a budget that ran out
/// → the message is written durably to the spool (file fsync, rename, directory fsync) and gets
/// `250 queued`; if the spool cannot take it → `451`, nothing claimed. Never `250` otherwise.
/// The retry worker (``runRetries()``) delivers spooled entries on the retry schedule.
package final class WebhookDelivery: Sendable {
    /// Tunables of the delivery policy.
    package struct Settings: Sendable {
        /// Time the MTA waits for the first attempt before the message is queued instead.
        package var syncBudget: Duration
        package var retry: RetryPolicy
        /// Consecutive failures that open the circuit (new mail goes straight to the spool).
        package var breakerThreshold: Int
        /// How long an open circuit stays open before one message may try again.
        package var breakerCooldown: Duration
        /// Retry attempts in flight at most (all endpoints together).
        package var retryConcurrency: Int
        /// Requests in flight per endpoint at most, unless the endpoint sets its own; `nil`: three
        /// quarters of the delivery threads, so one endpoint that hangs cannot take every thread.
        package var maxInFlightPerEndpoint: Int?

        package init(
            syncBudget: Duration = .seconds(5),
            retry: RetryPolicy = RetryPolicy(),
            breakerThreshold: Int = 5,
            breakerCooldown: Duration = .seconds(30),
            retryConcurrency: Int = 8
        ) {
            self.syncBudget = syncBudget
            self.retry = retry
            self.breakerThreshold = breakerThreshold
            self.breakerCooldown = breakerCooldown
            self.retryConcurrency = retryConcurrency
        }
    }

    /// Failure streak (circuit breaker) and token bucket of one endpoint.
    private struct EndpointHealth {
        var consecutiveFailures = 0
        var openUntilMilliseconds: Int64 = 0
        var bucket: TokenBucket?
        var lastSlowWarningMilliseconds: Int64 = 0
    }

    private struct State {
        var endpoints: [String: WebhookEndpoint]
        var delimiters: Set<Character> = ["+"]
        var health: [String: EndpointHealth] = [:]
        var inflight: Set<String> = []
        var schedule: [String: Int64] = [:]
    }

    package let settings: Settings
    private let client: WebhookClient
    private let spool: Spool?
    private let spoolThreads: NIOThreadPool
    private let logger: Logger
    private let state: Mutex<State>
    let metrics = RelayMetrics()
    /// Requests in flight per endpoint (sync, late and retry attempts together).
    private let slots = RequestSlots()

    package init(
        endpoints: [WebhookEndpoint],
        delimiters: Set<Character> = ["+"],
        client: WebhookClient,
        spool: Spool?,
        spoolThreads: NIOThreadPool,
        settings: Settings = Settings(),
        logger: Logger
    ) {
        self.client = client
        self.spool = spool
        self.spoolThreads = spoolThreads
        self.settings = settings
        self.logger = logger
        state = Mutex(State(endpoints: Dictionary(endpoints.map { ($0.name, $0) }) { $1 }, delimiters: delimiters))
    }

    /// Replaces the endpoints (configuration reload). Health and rate-limit state is kept for
    /// endpoints whose name and URL did not change; queued entries follow their endpoint's name.
    package func update(endpoints: [WebhookEndpoint], delimiters: Set<Character>) {
        state.withLock { state in
            state.delimiters = delimiters
            let old = state.endpoints
            state.endpoints = Dictionary(endpoints.map { ($0.name, $0) }) { $1 }
            state.health = state.health.filter { name, _ in
                guard let before = old[name], let after = state.endpoints[name] else { return false }
                return before.url == after.url && before.rateLimit == after.rateLimit
            }
        }
    }

    /// The names of the configured endpoints.
    package var endpointNames: [String] { state.withLock { $0.endpoints.keys.sorted() } }

    /// The spool, if one is configured.
    var queue: Spool? { spool }

    /// Counts a webhook answer and warns (at most once a minute per endpoint) when it was slow.
    private func observe(_ response: WebhookResponse, outcome: DeliveryOutcome, endpoint: WebhookEndpoint, kind: String)
    {
        metrics.request(endpoint: endpoint.name, outcome: outcome, kind: kind, seconds: response.seconds)
        guard response.seconds >= Self.slowSeconds else { return }
        let now = UnixTime.now().milliseconds
        let warn: Bool = state.withLock { state in
            guard now - (state.health[endpoint.name]?.lastSlowWarningMilliseconds ?? 0) >= 60_000 else { return false }
            state.health[endpoint.name, default: EndpointHealth()].lastSlowWarningMilliseconds = now
            return true
        }
        if warn {
            logger.warning(
                "slow endpoint",
                metadata: [
                    "endpoint": "\(endpoint.name)", "seconds": "\(response.seconds)", "http": "\(response.status)",
                ]
            )
        }
    }

    /// An answer slower than this is logged as a warning.
    static let slowSeconds = 2.0

    /// The endpoint with this name, as currently configured.
    package func endpoint(named name: String) -> WebhookEndpoint? { state.withLock { $0.endpoints[name] } }

    /// The endpoint a spool entry belongs to: by name, else (older entries) by URL.
    func endpoint(for metadata: SpoolMetadata) -> WebhookEndpoint? {
        state.withLock { state in
            if let name = metadata.endpointName { return state.endpoints[name] }
            return state.endpoints.values.first { $0.url == metadata.endpoint }
        }
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

    /// `true` while new mail for this endpoint skips the sync attempt (the endpoint keeps failing).
    package func circuitOpen(_ name: String) -> Bool {
        let now = UnixTime.now().milliseconds
        return state.withLock { ($0.health[name]?.openUntilMilliseconds ?? 0) > now }
    }

    /// When the retry worker next takes up spool entry `id` (Unix milliseconds); `nil` when it is not scheduled.
    package func scheduledAttempt(_ id: String) -> Int64? {
        state.withLock { $0.schedule[id] }
    }

    private func recordOutcome(_ outcome: DeliveryOutcome, endpoint: WebhookEndpoint) {
        let now = UnixTime.now().milliseconds
        let opened: Bool = state.withLock { state in
            var health = state.health[endpoint.name] ?? EndpointHealth()
            defer { state.health[endpoint.name] = health }
            if case .transient = outcome {
                health.consecutiveFailures += 1
                if health.consecutiveFailures >= settings.breakerThreshold && health.openUntilMilliseconds <= now {
                    health.openUntilMilliseconds = now + Self.milliseconds(settings.breakerCooldown)
                    return true
                }
            } else {
                health.consecutiveFailures = 0
                health.openUntilMilliseconds = 0
            }
            return false
        }
        if opened {
            logger.warning(
                "endpoint keeps failing: circuit open, new mail goes straight to the spool",
                metadata: ["endpoint": "\(endpoint.name)"]
            )
        }
    }

    /// Whether this message may make a sync attempt (closed circuit, or the one probe after cooldown).
    private func mayAttempt(_ endpoint: WebhookEndpoint) -> Bool {
        let now = UnixTime.now().milliseconds
        return state.withLock { state in
            let open = state.health[endpoint.name]?.openUntilMilliseconds ?? 0
            if open == 0 { return true }
            if open > now { return false }
            state.health[endpoint.name, default: EndpointHealth()].openUntilMilliseconds =
                now + Self.milliseconds(settings.breakerCooldown)  // half-open: one probe
            return true
        }
    }

    /// The endpoint's cap on requests in flight.
    func inFlightLimit(_ endpoint: WebhookEndpoint) -> Int {
        endpoint.maxInFlight ?? settings.maxInFlightPerEndpoint ?? max(1, client.threads - client.threads / 4)
    }

    /// Waits for the endpoint's rate limit; `false` (nothing reserved) when that would take longer than `maxWait`.
    private func waitForRate(_ endpoint: WebhookEndpoint, maxWait: Duration?) async -> Bool {
        guard let limit = endpoint.rateLimit else { return true }
        let now = UnixTime.now().milliseconds
        let wait: Int64 = state.withLock { state in
            var health = state.health[endpoint.name] ?? EndpointHealth()
            if health.bucket?.limit != limit { health.bucket = TokenBucket(limit: limit, nowMilliseconds: now) }
            let wait = health.bucket!.reserve(nowMilliseconds: now)
            if let maxWait, wait > Self.milliseconds(maxWait) { health.bucket!.release() }
            state.health[endpoint.name] = health
            return wait
        }
        if let maxWait, wait > Self.milliseconds(maxWait) { return false }
        if wait > 0 { try? await Task.sleep(for: .milliseconds(wait)) }
        return true
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// Tags of the envelope recipients (plus-addressing), in order, unique.
    package static func tags(_ recipients: [String], delimiters: Set<Character>) -> [String] {
        var seen = Set<String>()
        return recipients.compactMap { RouteTable.tag(of: $0, delimiters: delimiters) }.filter {
            seen.insert($0).inserted
        }
    }

    // MARK: - After the final dot

    /// Delivers or queues the message for `recipients` (those of the transaction routed to
    /// `endpoint`); one result that applies to each of them.
    package func deliver(
        _ message: LMTPMessage,
        recipients: [LMTPRecipient],
        to endpoint: WebhookEndpoint,
        tags: [String] = [],
        route: String? = nil
    ) async -> LMTPRecipientResult {
        let started = ContinuousClock.now
        let envelope = Self.envelope(of: message, recipients: recipients)
        let receivedAt = UnixTime.now()
        let webhookID = MessagePayload.id(raw: message.data, recipients: envelope.rcptTo, endpoint: endpoint.url)
        let metadata = SpoolMetadata(
            id: SpoolID.make(milliseconds: receivedAt.milliseconds, random: UInt32.random(in: 0...UInt32.max)),
            webhookID: webhookID,
            endpoint: endpoint.url,
            mailFrom: envelope.mailFrom,
            rcptTo: envelope.rcptTo,
            lhlo: envelope.lhlo,
            smtpUTF8: envelope.smtpUTF8,
            body: envelope.body,
            client: [
                ("name", envelope.client.name), ("addr", envelope.client.addr), ("port", envelope.client.port),
                ("proto", envelope.client.proto),
                ("helo", envelope.client.helo), ("ident", envelope.client.ident), ("source", envelope.client.source),
            ]
            .reduce(into: [:]) { result, pair in if let value = pair.1 { result[pair.0] = value } },
            receivedAtMilliseconds: receivedAt.milliseconds,
            size: message.data.count,
            endpointName: endpoint.name,
            format: endpoint.format.rawValue
        )
        let budget: Duration? = spool == nil ? nil : (endpoint.syncBudget ?? settings.syncBudget)

        let result: (LMTPRecipientResult, String, Int)
        if !mayAttempt(endpoint) {
            result = await queue(metadata, raw: message.data, attempt: nil, reason: "circuit open")
        } else if !(await waitForRate(endpoint, maxWait: budget ?? .seconds(60))) {
            result = await queue(
                metadata,
                raw: message.data,
                attempt: nil,
                reason: "rate limit \(endpoint.rateLimit?.description ?? "")"
            )
        } else if !(await slots.acquire(
            endpoint.name,
            limit: inFlightLimit(endpoint),
            maxWait: (budget ?? .seconds(60)) - (ContinuousClock.now - started)
        )) {
            logger.warning(
                "endpoint busy: message queued without an attempt",
                metadata: ["endpoint": "\(endpoint.name)", "in_flight": "\(inFlightLimit(endpoint))"]
            )
            result = await queue(
                metadata,
                raw: message.data,
                attempt: nil,
                reason: "endpoint busy: \(inFlightLimit(endpoint)) requests in flight"
            )
        } else {
            result = await attempt(
                metadata,
                raw: message.data,
                envelope: envelope,
                receivedAt: receivedAt,
                endpoint: endpoint,
                tags: tags,
                route: route,
                budget: budget.map { $0 - (ContinuousClock.now - started) }
            )
        }
        let delay = ContinuousClock.now - started
        for recipient in recipients {
            metrics.recipient(result.1)
            logger.info(
                "delivery",
                metadata: [
                    "id": "\(webhookID)", "spool_id": "\(metadata.id)", "queue_id": "\(message.client.ident ?? "-")",
                    "rcpt": "\(recipient.mailbox.address)",
                    "endpoint": "\(endpoint.name)", "route": "\(route ?? "-")", "status": "\(result.1)",
                    "http": "\(result.2)", "attempt": "1",
                    "size": "\(message.data.count)",
                    "delay": "\(Double(Self.milliseconds(delay)) / 1000)",
                ]
            )
        }
        return result.0
    }

    /// The sync attempt: render, POST within the budget, classify; queue when it cannot finish now.
    private func attempt(
        _ metadata: SpoolMetadata,
        raw: [UInt8],
        envelope: MailEnvelope,
        receivedAt: UnixTime,
        endpoint: WebhookEndpoint,
        tags: [String],
        route: String?,
        budget: Duration?
    ) async -> (LMTPRecipientResult, String, Int) {
        let webhookID = metadata.webhookID
        let body: RenderedBody
        do {
            let rendered = try endpoint.render(
                webhookID: webhookID,
                receivedAt: receivedAt,
                envelope: envelope,
                raw: raw,
                tags: tags,
                route: route
            )
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
            slots.release(endpoint.name)
            logger.error(
                "cannot render the message for this endpoint",
                metadata: ["id": "\(webhookID)", "endpoint": "\(endpoint.name)", "error": "\(error)"]
            )
            return await queue(metadata, raw: raw, attempt: nil, reason: "cannot render: \(error)")
        }
        // The slot taken in deliver() is held until the request ends, also when it outlives the budget.
        let attempt = Task {
            defer { self.slots.release(endpoint.name) }
            return await client.post(endpoint.request(webhookID: webhookID, body: body))
        }
        guard let response = await Self.race(attempt, budget: budget) else {
            // The budget ran out: queue now; the attempt goes on and completes the entry if it succeeds.
            state.withLock { _ = $0.inflight.insert(metadata.id) }
            let result = await queue(metadata, raw: raw, attempt: nil, reason: "no answer within the sync budget")
            let queued = result.1 == "queued"
            Task {
                let response = await attempt.value
                await self.finishLateAttempt(metadata, response: response, queued: queued, endpoint: endpoint)
            }
            return result
        }
        let outcome = DeliveryOutcome.classify(response, rule: endpoint.successRule)
        recordOutcome(outcome, endpoint: endpoint)
        observe(response, outcome: outcome, endpoint: endpoint, kind: "sync")
        switch outcome {
        case .delivered:
            return (.delivered("delivered id=\(webhookID)"), "delivered", response.status)
        case .permanent(let code, let enhanced, let reason):
            if response.status == 410 {
                logger.warning("endpoint is gone (HTTP 410)", metadata: ["endpoint": "\(endpoint.name)"])
            }
            return (
                LMTPRecipientResult(code: code, enhancedCode: enhanced, text: "\(reason) id=\(webhookID)"), "bounced",
                response.status
            )
        case .transient(let reason):
            if spool == nil {
                return (
                    .temporaryFailure("webhook failed (\(WebhookDelivery.shorten(reason, to: 120))) id=\(webhookID)"),
                    "deferred", response.status
                )
            }
            let record = SpoolState.Attempt(
                atMilliseconds: UnixTime.now().milliseconds,
                status: response.status,
                error: response.error.map { "\($0.kind.rawValue): \($0.message)" },
                snippet: String(response.snippet.prefix(200)),
                kind: "sync"
            )
            return await queue(metadata, raw: raw, attempt: record, reason: reason)
        }
    }

    /// The attempt's response, or `nil` when `budget` ran out first (the attempt keeps running).
    private static func race(_ attempt: Task<WebhookResponse, Never>, budget: Duration?) async -> WebhookResponse? {
        guard let budget else { return await attempt.value }
        let box = RaceBox()
        return await withCheckedContinuation { continuation in
            box.install(continuation)
            let timer = Task {
                try? await Task.sleep(for: budget)
                box.finish(nil)
            }
            Task {
                box.finish(await attempt.value)
                timer.cancel()  // no sleeping timer left behind per message
            }
        }
    }

    /// Writes the entry durably; `250 queued` or, when the spool cannot take it, `451`.
    private func queue(
        _ metadata: SpoolMetadata,
        raw: [UInt8],
        attempt: SpoolState.Attempt?,
        reason: String
    ) async -> (LMTPRecipientResult, String, Int) {
        guard let spool else {
            return (
                .temporaryFailure("webhook unavailable (\(Self.shorten(reason, to: 100))) id=\(metadata.webhookID)"),
                "deferred", attempt?.status ?? 0
            )
        }
        let now = UnixTime.now().milliseconds
        var entryState = SpoolState(nextAttemptMilliseconds: now)
        if let attempt { entryState.append(attempt) }
        let decision = settings.retry.afterTransientFailure(
            attempts: 1,
            createdAtMilliseconds: metadata.receivedAtMilliseconds,
            nowMilliseconds: now,
            retryAfterSeconds: nil,
            random: Double.random(in: 0..<1)
        )
        if case .retry(let at) = decision { entryState.nextAttemptMilliseconds = at }
        do {
            try await spoolThreads.runIfActive { [entryState] in
                try spool.enqueue(metadata, raw: raw, state: entryState)
            }
        } catch {
            state.withLock { _ = $0.inflight.remove(metadata.id) }
            logger.error(
                "cannot queue message: answering 451",
                metadata: ["id": "\(metadata.webhookID)", "error": "\(error)"]
            )
            return (
                LMTPRecipientResult(
                    code: 451,
                    enhancedCode: "4.3.0",
                    text: "cannot queue message (\(Self.shorten("\(error)", to: 100))) id=\(metadata.webhookID)"
                ), "deferred", attempt?.status ?? 0
            )
        }
        state.withLock { $0.schedule[metadata.id] = entryState.nextAttemptMilliseconds }
        return (
            LMTPRecipientResult(
                code: 250,
                enhancedCode: "2.0.0",
                text: "queued as \(metadata.id) (\(Self.shorten(reason, to: 80))) id=\(metadata.webhookID)"
            ), "queued", attempt?.status ?? 0
        )
    }

    /// The sync attempt finished after the budget: complete the entry on success, else record it.
    private func finishLateAttempt(
        _ metadata: SpoolMetadata,
        response: WebhookResponse,
        queued: Bool,
        endpoint: WebhookEndpoint
    ) async {
        defer { state.withLock { _ = $0.inflight.remove(metadata.id) } }
        let outcome = DeliveryOutcome.classify(response, rule: endpoint.successRule)
        recordOutcome(outcome, endpoint: endpoint)
        observe(response, outcome: outcome, endpoint: endpoint, kind: "sync")
        guard queued, let spool else { return }
        let attempt = SpoolState.Attempt(
            atMilliseconds: UnixTime.now().milliseconds,
            status: response.status,
            error: response.error.map { "\($0.kind.rawValue): \($0.message)" },
            snippet: String(response.snippet.prefix(200)),
            kind: "sync"
        )
        await record(metadata, attempt: attempt, outcome: outcome, retryAfter: response.retryAfterSeconds, spool: spool)
    }

    // MARK: - Retries

    /// Loads the spool at start-up: removes tmp leftovers, quarantines damaged entries, schedules the rest.
    package func loadSpool() async throws {
        guard let spool else { return }
        let (report, schedule) = try await spoolThreads.runIfActive { () -> (Spool.RecoveryReport, [String: Int64]) in
            let report = spool.recover()
            var schedule: [String: Int64] = [:]
            for id in spool.ids() { schedule[id] = spool.state(id)?.nextAttemptMilliseconds ?? 0 }
            return (report, schedule)
        }
        state.withLock { $0.schedule.merge(schedule) { $1 } }
        for damaged in report.quarantined {
            logger.error("damaged spool entry moved to quarantine", metadata: ["entry": "\(damaged)"])
        }
        logger.info(
            "spool loaded",
            metadata: [
                "path": "\(spool.path)", "entries": "\(report.entries)",
                "tmp_removed": "\(report.removedTemporaryFiles)",
            ]
        )
    }

    /// Delivers due spool entries until the task is cancelled; in-flight attempts finish first.
    package func runRetries() async {
        guard spool != nil else { return }
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let now = UnixTime.now().milliseconds
                let (due, backlog): ([String], Bool) = state.withLock { state in
                    let ready = state.schedule.filter { $0.value <= now && !state.inflight.contains($0.key) }
                    let room = settings.retryConcurrency - state.inflight.count
                    guard room > 0, !ready.isEmpty else { return ([], !ready.isEmpty) }
                    let ids = ready.sorted { $0.value < $1.value }.prefix(room).map(\.key)
                    for id in ids { state.inflight.insert(id) }
                    return (ids, ready.count > ids.count)
                }
                for id in due {
                    group.addTask {
                        await self.retry(id)
                        self.state.withLock { _ = $0.inflight.remove(id) }
                    }
                }
                // Busy: look again soon (slots free up as attempts finish); idle: every 100 ms.
                try? await Task.sleep(for: .milliseconds(due.isEmpty && !backlog ? 100 : 2))
            }
        }
    }

    private func retry(_ id: String) async {
        guard let spool else { return }
        let claimed: (Spool.Claim, Spool.Entry)
        do {
            claimed = try await spoolThreads.runIfActive { () -> (Spool.Claim, Spool.Entry) in
                let claim = try spool.claim(id)
                return (claim, try spool.read(id))
            }
        } catch let error as SpoolError where error.kind == .locked {
            state.withLock { $0.schedule[id] = UnixTime.now().milliseconds + 1_000 }
            return
        } catch let error as SpoolError where error.kind == .damaged {
            // Damaged on disk (truncated, checksum mismatch): moved aside for an operator, never deleted.
            state.withLock { _ = $0.schedule.removeValue(forKey: id) }
            let failure: String?
            do {
                failure = try await spoolThreads.runIfActive { () -> String? in
                    do {
                        try spool.quarantine(id)
                        return nil
                    } catch { return "\(error)" }
                }
            } catch {
                failure = "\(error)"
            }
            logger.error(
                "damaged spool entry moved to quarantine/; it will not be retried",
                metadata: [
                    "spool_id": "\(id)", "error": "\(error)", "moved": "\(failure.map { "no: \($0)" } ?? "yes")",
                ]
            )
            metrics.deadLettered(endpoint: "-", reason: "damaged")
            return
        } catch let error as SpoolError where error.kind == .unreadable {
            // An I/O error reading it: keep it and try again in a minute.
            state.withLock { $0.schedule[id] = UnixTime.now().milliseconds + 60_000 }
            logger.error(
                "cannot read spool entry; retrying in 60 s",
                metadata: ["spool_id": "\(id)", "error": "\(error)"]
            )
            return
        } catch {
            state.withLock { _ = $0.schedule.removeValue(forKey: id) }
            if (error as? SpoolError)?.kind != .notFound {
                logger.error("cannot read spool entry", metadata: ["spool_id": "\(id)", "error": "\(error)"])
            }
            return
        }
        let (claim, entry) = claimed
        let now = UnixTime.now().milliseconds
        if entry.state.nextAttemptMilliseconds > now {  // rescheduled by someone else
            state.withLock { $0.schedule[id] = entry.state.nextAttemptMilliseconds }
            return
        }
        let delimiters = state.withLock { $0.delimiters }
        guard let endpoint = self.endpoint(for: entry.metadata) else {
            // Its endpoint is no longer configured: keep the entry (never dropped) and look again later.
            logger.warning(
                "queued message for an endpoint that is not configured: kept, retried after a reload adds it back",
                metadata: [
                    "spool_id": "\(id)", "endpoint": "\(entry.metadata.endpointName ?? entry.metadata.endpoint)",
                ]
            )
            state.withLock { $0.schedule[id] = UnixTime.now().milliseconds + 300_000 }
            return
        }
        guard await slots.acquire(endpoint.name, limit: inFlightLimit(endpoint), maxWait: .zero) else {
            // The endpoint's slots are taken (it is slow or hangs): try again in a second.
            state.withLock { $0.schedule[id] = UnixTime.now().milliseconds + 1_000 }
            return
        }
        defer { slots.release(endpoint.name) }
        _ = await waitForRate(endpoint, maxWait: nil)
        let response: WebhookResponse
        do {
            let body = try endpoint.render(spooled: entry.metadata, raw: entry.raw, delimiters: delimiters)
            response = await client.post(endpoint.request(webhookID: entry.metadata.webhookID, body: body))
        } catch {
            response = WebhookResponse(
                status: 0,
                error: WebhookTransportError(kind: .other, message: "cannot render: \(error)")
            )
        }
        let outcome = DeliveryOutcome.classify(response, rule: endpoint.successRule)
        recordOutcome(outcome, endpoint: endpoint)
        observe(response, outcome: outcome, endpoint: endpoint, kind: "retry")
        let attempt = SpoolState.Attempt(
            atMilliseconds: UnixTime.now().milliseconds,
            status: response.status,
            error: response.error.map { "\($0.kind.rawValue): \($0.message)" },
            snippet: String(response.snippet.prefix(200)),
            kind: "retry"
        )
        await record(
            entry.metadata,
            attempt: attempt,
            outcome: outcome,
            retryAfter: response.retryAfterSeconds,
            spool: spool
        )
        withExtendedLifetime(claim) {}
    }

    /// Applies an attempt's outcome to the spool entry: complete, reschedule or dead-letter.
    private func record(
        _ metadata: SpoolMetadata,
        attempt: SpoolState.Attempt,
        outcome: DeliveryOutcome,
        retryAfter: Int?,
        spool: Spool
    ) async {
        let policy = settings.retry
        let logger = self.logger
        let metrics = self.metrics
        let next: Int64? =
            try? await spoolThreads.runIfActive { () -> Int64? in
                switch outcome {
                case .delivered:
                    try spool.complete(metadata.id)
                    logger.info(
                        "delivery",
                        metadata: [
                            "id": "\(metadata.webhookID)", "spool_id": "\(metadata.id)", "status": "delivered",
                            "http": "\(attempt.status)", "attempt": "\(attempt.kind)",
                        ]
                    )
                    return nil
                case .permanent(_, _, let reason):
                    var state = spool.state(metadata.id) ?? SpoolState(nextAttemptMilliseconds: 0)
                    state.append(attempt)
                    state.deadReason = reason
                    try spool.deadLetter(metadata.id, state: state)
                    metrics.deadLettered(endpoint: metadata.endpointName ?? metadata.endpoint, reason: "refused")
                    logger.error(
                        "dead letter: endpoint refused a queued message",
                        metadata: ["id": "\(metadata.webhookID)", "spool_id": "\(metadata.id)", "reason": "\(reason)"]
                    )
                    return nil
                case .transient(let reason):
                    var state = spool.state(metadata.id) ?? SpoolState(nextAttemptMilliseconds: 0)
                    state.append(attempt)
                    switch policy.afterTransientFailure(
                        attempts: state.attemptCount,
                        createdAtMilliseconds: metadata.receivedAtMilliseconds,
                        nowMilliseconds: attempt.atMilliseconds,
                        retryAfterSeconds: retryAfter,
                        random: Double.random(in: 0..<1)
                    ) {
                    case .retry(let at):
                        state.nextAttemptMilliseconds = at
                        try spool.writeState(metadata.id, state)
                        logger.info(
                            "delivery",
                            metadata: [
                                "id": "\(metadata.webhookID)", "spool_id": "\(metadata.id)", "status": "deferred",
                                "http": "\(attempt.status)", "attempt": "\(state.attemptCount)", "reason": "\(reason)",
                            ]
                        )
                        return at
                    case .deadLetter(let deadReason):
                        state.deadReason = deadReason
                        try spool.deadLetter(metadata.id, state: state)
                        metrics.deadLettered(endpoint: metadata.endpointName ?? metadata.endpoint, reason: "expired")
                        logger.error(
                            "dead letter: gave up",
                            metadata: [
                                "id": "\(metadata.webhookID)", "spool_id": "\(metadata.id)", "reason": "\(deadReason)",
                            ]
                        )
                        return nil
                    }
                }
            } ?? nil
        state.withLock { state in
            if let next { state.schedule[metadata.id] = next } else { state.schedule.removeValue(forKey: metadata.id) }
        }
    }

    static func shorten(_ text: String, to limit: Int) -> String {
        let clean = String(text.map { $0.isNewline || $0 == "\r" ? " " : $0 })
        return clean.count <= limit ? clean : String(clean.prefix(limit)) + "…"
    }
}

/// Resumes a continuation exactly once, with whichever result comes first.
private final class RaceBox: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<WebhookResponse?, Never>?, result: WebhookResponse??)>(
        (nil, nil)
    )

    func install(_ continuation: CheckedContinuation<WebhookResponse?, Never>) {
        let early: WebhookResponse?? = state.withLock { state in
            if let result = state.result { return result }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(returning: early) }
    }

    func finish(_ value: WebhookResponse?) {
        let continuation: CheckedContinuation<WebhookResponse?, Never>? = state.withLock { state in
            guard state.result == nil else { return nil }
            state.result = .some(value)
            let continuation = state.continuation
            state.continuation = nil
            return continuation
        }
        continuation?.resume(returning: value)
    }
}
