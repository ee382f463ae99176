import NIOCore

/// What the connection loop reads: bytes, or a timer/shutdown signal turned into an inbound message
/// so that one `for await` loop sees everything in order.
enum LMTPInboundEvent: Sendable {
    case bytes(ByteBuffer)
    /// A periodic tick: time to check the command or DATA deadline.
    case tick
    case shutdown
}

/// Fired into every connection's pipeline when the server starts shutting down.
struct LMTPShutdownEvent: Sendable {}

/// Turns reads, periodic ticks and ``LMTPShutdownEvent`` into ``LMTPInboundEvent``s. Ticks come
/// every `tickInterval` whether or not bytes arrive, so a client that drips bytes still meets its
/// deadline.
final class LMTPInboundEventHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = LMTPInboundEvent

    private let tickInterval: TimeAmount
    private var ticker: RepeatedTask?

    init(tickInterval: TimeAmount) { self.tickInterval = tickInterval }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTicking(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startTicking(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        ticker?.cancel()
        ticker = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ticker?.cancel()
        ticker = nil
    }

    private func startTicking(context: ChannelHandlerContext) {
        guard ticker == nil else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: tickInterval, delay: tickInterval) { _ in
            let context = loopBound.value
            context.fireChannelRead(NIOAny(LMTPInboundEvent.tick))
            context.fireChannelReadComplete()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(wrapInboundOut(.bytes(unwrapInboundIn(data))))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // NIOAsyncChannel hands reads to its stream at read-complete: fire one after each synthetic read.
        if event is LMTPShutdownEvent {
            context.fireChannelRead(wrapInboundOut(.shutdown))
            context.fireChannelReadComplete()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

@available(*, unavailable)
extension LMTPInboundEventHandler: Sendable {}
