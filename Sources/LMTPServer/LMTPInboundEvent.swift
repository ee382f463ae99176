import NIOCore

/// What the connection loop reads: bytes, or a timer/shutdown signal turned into an inbound message
/// so that one `for await` loop sees everything in order.
enum LMTPInboundEvent: Sendable {
    case bytes(ByteBuffer)
    case idle
    case shutdown
}

/// Fired into every connection's pipeline when the server starts shutting down.
struct LMTPShutdownEvent: Sendable {}

/// Turns reads, `IdleStateHandler` read timeouts and ``LMTPShutdownEvent`` into ``LMTPInboundEvent``s.
final class LMTPInboundEventHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = LMTPInboundEvent

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(wrapInboundOut(.bytes(unwrapInboundIn(data))))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // NIOAsyncChannel hands reads to its stream at read-complete: fire one after each synthetic read.
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.fireChannelRead(wrapInboundOut(.idle))
            context.fireChannelReadComplete()
        } else if event is LMTPShutdownEvent {
            context.fireChannelRead(wrapInboundOut(.shutdown))
            context.fireChannelReadComplete()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

@available(*, unavailable)
extension LMTPInboundEventHandler: Sendable {}
