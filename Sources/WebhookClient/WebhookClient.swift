import NIOCore
import NIOPosix

/// POSTs webhook requests through libcurl's multi interface on one dedicated thread
/// (``CurlMultiLoop``): never on an event loop or the Swift cooperative pool. Connections to an
/// endpoint are kept alive across requests in the multi handle's cache; `threads` transfers run at
/// once at most (extra requests wait their turn).
package final class WebhookClient: Sendable {
    /// The version sent in the `User-Agent` header.
    package static let version = "0.1.0"
    /// How much of a response body is kept for logs and reply texts.
    package static let snippetLimit = 64 * 1024

    private let loop: CurlMultiLoop
    /// Requests in flight at most (the `delivery_threads` setting: once a thread each).
    package let threads: Int

    /// Starts the transfer thread; at most `threads` requests run at once.
    package init(threads: Int = 8) {
        self.threads = max(1, threads)
        loop = CurlMultiLoop(maxTransfers: self.threads, snippetLimit: Self.snippetLimit)
    }

    /// POSTs one request; returns the outcome (never throws: failures are in the response).
    package func post(_ request: WebhookRequest) async -> WebhookResponse {
        await withCheckedContinuation { continuation in
            post(request) { continuation.resume(returning: $0) }
        }
    }

    /// POSTs one request and calls `completion` with the outcome on the transfer thread (or at
    /// once, when the client is shut down). No task is created: a caller that waits with a
    /// deadline of its own gets the response without a hop through the cooperative pool.
    package func post(_ request: WebhookRequest, completion: @escaping @Sendable (WebhookResponse) -> Void) {
        loop.submit(request, completion: completion)
    }

    /// Requests running and requests waiting for a free transfer slot.
    package var load: (running: Int, waiting: Int) { loop.load }

    /// Waits for running transfers to finish (each is bounded by its timeout) and stops the thread.
    package func shutdown() async {
        await loop.shutdown()
    }
}
