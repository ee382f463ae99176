import LMTPCore
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// One admitted connection: the greeting, then the session's actions until it closes — replies
/// batched until input is needed, the policy hooks, bodies spilled to disk while they arrive,
/// deadlines, and each complete message handed to the handler within the delivery bounds.
struct LMTPConnection: Sendable {
    let configuration: LMTPServerConfiguration
    let policy: LMTPPolicy
    let metrics: LMTPServerMetrics
    let deliveries: DeliveryGate
    let threadPool: NIOThreadPool
    let handler: LMTPServer.FileMessageHandler
    /// Whether a spilled message is read back whole (else the handler gets its file).
    let readsBack: Bool
    let logger: Logger

    /// Serves `connection` until it closes.
    func serve(_ connection: NIOAsyncChannel<LMTPInboundEvent, ByteBuffer>) async {
        let channel = connection.channel
        var session = LMTPSession(configuration: configuration.effectiveSession)
        let clock = ContinuousClock()
        var lastEvent = clock.now
        var commandDeadline = LMTPDeadline(timeout: configuration.idleTimeout)
        var dataDeadline = LMTPDeadline(timeout: configuration.dataTimeout, minimumRate: configuration.minimumDataRate)
        var spill: SpillFile?
        var spillFailed = false
        do {
            try await connection.executeThenClose { inbound, outbound in
                var pending = channel.allocator.buffer(capacity: 512)
                func flush() async throws {
                    guard pending.readableBytes > 0 else { return }
                    try await outbound.write(pending)
                    pending.clear()
                }
                pending.writeString(session.greeting.wireFormat)
                metrics.reply(code: session.greeting.code)
                var events = inbound.makeAsyncIterator()
                while true {
                    let action = session.nextAction()
                    if spill != nil || spillFailed, !session.isReceivingData {
                        switch action {
                        case .deliver, .spill: break
                        default:
                            // The transaction ended without a message (size or header limit, lost connection).
                            await spill?.remove()
                            spill = nil
                            spillFailed = false
                        }
                    }
                    switch action {
                    case .send(let reply):
                        pending.writeString(reply.wireFormat)
                        metrics.reply(code: reply.code)
                        if reply.code == 354 { dataDeadline.reset() }
                        commandDeadline.reset()
                        continue
                    case .checkSender(let sender):
                        let decision = await policy.sender?(sender) ?? .accept
                        session.resolveSender(decision)
                        continue
                    case .checkRecipient(let recipient):
                        let decision = await policy.recipient?(recipient) ?? .accept
                        session.resolveRecipient(decision)
                        continue
                    case .spill(let bytes):
                        guard !spillFailed, let directory = configuration.spillDirectory else { continue }
                        do {
                            if spill == nil { spill = try await SpillFile.create(in: directory, pool: threadPool) }
                            try await spill?.append(bytes)
                        } catch {
                            logger.error(
                                "cannot hold an incoming message on disk; it will be refused with 451",
                                metadata: ["error": "\(error)"]
                            )
                            spillFailed = true
                        }
                        continue
                    case .deliver(var message):
                        try await flush()
                        let file = spill
                        spill = nil
                        let failed = spillFailed
                        spillFailed = false
                        let results = await deliver(&message, spilled: file, spillFailed: failed, logger: logger)
                        session.finishDelivery(results)
                        lastEvent = clock.now
                        commandDeadline.reset()
                        continue
                    case .close:
                        try await flush()
                        if let lost = session.lostInDataBytes {
                            logger.info("lost connection in DATA; message discarded", metadata: ["bytes": "\(lost)"])
                        }
                        return
                    case .needInput:
                        try await flush()
                    }
                    guard let event = try await events.next() else {
                        session.receiveEndOfInput()
                        continue
                    }
                    let now = clock.now
                    let elapsed = now - lastEvent
                    lastEvent = now
                    var received = 0
                    switch event {
                    case .bytes(let bytes):
                        received = bytes.readableBytes
                        session.receive(bytes.readableBytesView)
                    case .tick:
                        break
                    case .shutdown:
                        session.beginShutdown()
                        continue
                    }
                    if session.isReceivingData {
                        dataDeadline.record(elapsed: elapsed, bytes: received)
                        if dataDeadline.isExpired {
                            let rate = configuration.minimumDataRate
                            logger.info("data timeout", metadata: ["minimum_rate": "\(rate)"])
                            session.dataTimeout()
                        }
                    } else {
                        commandDeadline.record(elapsed: elapsed, bytes: 0)
                        if commandDeadline.isExpired {
                            logger.info("command timeout")
                            session.idleTimeout()
                        }
                    }
                }
            }
        } catch {
            logger.debug("connection ended with error", metadata: ["error": "\(error)"])
        }
        await spill?.remove()
        logger.debug("connection closed")
    }

    /// Hands one message to the handler within the delivery bounds: waits for a slot (or answers
    /// every recipient `451 4.3.2` when the queue is full), reads a spilled message back, and
    /// removes its file afterwards.
    private func deliver(
        _ message: inout LMTPMessage,
        spilled file: SpillFile?,
        spillFailed: Bool,
        logger: Logger
    ) async -> LMTPRecipientResults {
        metrics.deliveriesActive.increment()
        defer {
            metrics.deliveriesActive.decrement()
            metrics.transactions.increment()
        }
        let busy = LMTPRecipientResult(code: 451, enhancedCode: "4.3.2", text: "Too busy, try again later")
        guard !spillFailed else {
            await file?.remove()
            return LMTPRecipientResults(
                all: LMTPRecipientResult(
                    code: 451,
                    enhancedCode: "4.3.0",
                    text: "Cannot store the message, try again later"
                )
            )
        }
        let size = message.spilledBytes + message.data.count
        let weight = readsBack ? size : message.data.count  // a message handed over as a file is not in memory
        guard await deliveries.enter(weight: weight) else {
            await file?.remove()
            logger.warning(
                "delivery queue full; message refused with 451",
                metadata: ["queued": "\(configuration.maxQueuedDeliveries)"]
            )
            return LMTPRecipientResults(all: busy)
        }
        defer { deliveries.leave(weight: weight) }
        var handedFile: LMTPMessageFile? = nil
        if let file {
            do {
                if readsBack {
                    message.data = try await file.readAll(expecting: message.spilledBytes, then: message.data)
                } else {
                    try await file.append(message.data)
                    message.data = []
                    handedFile = LMTPMessageFile(path: file.path, size: size)
                }
                message.spilledBytes = 0
            } catch {
                logger.error("cannot read back an incoming message; refused with 451", metadata: ["error": "\(error)"])
                await file.remove()
                return LMTPRecipientResults(
                    all: LMTPRecipientResult(
                        code: 451,
                        enhancedCode: "4.3.0",
                        text: "Cannot read the message back, try again later"
                    )
                )
            }
            if readsBack { await file.remove() }
        }
        metrics.messageBytes.increment(by: size)
        metrics.messageSize.record(size)
        let results = await handler(message, handedFile)
        if handedFile != nil { await file?.remove() }
        return results
    }
}
