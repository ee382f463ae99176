import LMTPHook
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A real HTTP receiver on loopback (``WebhookSink``) that keeps every request for assertions.
package final class RecordingSink: Sendable {
    package let sink: WebhookSink
    private let store: NIOLockedValueBox<[WebhookSink.Request]>
    private let acceptedStore: NIOLockedValueBox<[WebhookSink.Request]>
    private let behaviour: NIOLockedValueBox<(status: Int?, delayMilliseconds: Int)>
    private let body: NIOLockedValueBox<String?>

    private init(
        sink: WebhookSink,
        store: NIOLockedValueBox<[WebhookSink.Request]>,
        accepted: NIOLockedValueBox<[WebhookSink.Request]>,
        behaviour: NIOLockedValueBox<(status: Int?, delayMilliseconds: Int)>,
        body: NIOLockedValueBox<String?>
    ) {
        self.body = body
        self.sink = sink
        self.store = store
        self.acceptedStore = accepted
        self.behaviour = behaviour
    }

    /// `responderThreads`: how many requests may be answered at once (each waits out the answer delay).
    package static func start(responderThreads: Int = 1) async throws -> RecordingSink {
        let store = NIOLockedValueBox<[WebhookSink.Request]>([])
        let accepted = NIOLockedValueBox<[WebhookSink.Request]>([])
        let behaviour = NIOLockedValueBox<(status: Int?, delayMilliseconds: Int)>((nil, 0))
        let body = NIOLockedValueBox<String?>(nil)
        let sink = try await WebhookSink.start(
            respond: { request in
                let (status, delay) = behaviour.withLockedValue { $0 }
                if delay > 0 { usleep(useconds_t(delay * 1000)) }
                if status == nil || (200..<300).contains(status!) { accepted.withLockedValue { $0.append(request) } }
                return status
            },
            responseBody: { body.withLockedValue { $0 } },
            responderThreads: responderThreads,
            record: { request in store.withLockedValue { $0.append(request) } }
        )
        return RecordingSink(sink: sink, store: store, accepted: accepted, behaviour: behaviour, body: body)
    }

    /// Answer every request with this status from now on (`nil`: 200, or the `/status/NNN` path rule).
    package func answer(_ status: Int?, afterMilliseconds delay: Int = 0) {
        behaviour.withLockedValue { $0 = (status, delay) }
    }

    /// Answer with this body from now on (`nil`: the sink's own, by path).
    package func respondWithBody(_ text: String?) { body.withLockedValue { $0 = text } }

    /// `http://127.0.0.1:PORT/`.
    package var url: String { sink.url }

    package var requests: [WebhookSink.Request] { store.withLockedValue { $0 } }

    /// Requests answered 2xx (with ``answer(_:afterMilliseconds:)``: those the sink accepted).
    package var accepted: [WebhookSink.Request] { acceptedStore.withLockedValue { $0 } }

    /// Waits until at least `count` requests arrived (or the timeout passed); returns them.
    @discardableResult
    package func waitFor(_ count: Int, timeout: Duration = .seconds(10)) async -> [WebhookSink.Request] {
        await wait(count, timeout, \.requests)
    }

    /// Waits until at least `count` requests were accepted (2xx) or the timeout passed; returns them.
    @discardableResult
    package func waitForAccepted(_ count: Int, timeout: Duration = .seconds(10)) async -> [WebhookSink.Request] {
        await wait(count, timeout, \.accepted)
    }

    private func wait(
        _ count: Int,
        _ timeout: Duration,
        _ list: KeyPath<RecordingSink, [WebhookSink.Request]>
    ) async -> [WebhookSink.Request] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let current = self[keyPath: list]
            if current.count >= count { return current }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return self[keyPath: list]
    }

    package func stop() async { await sink.stop() }
}
