import NIOCore
import NIOPosix

/// POSTs webhook requests through libcurl on a dedicated, bounded pool of threads.
///
/// Each pool thread owns one curl easy handle for its lifetime, so connections to the endpoint are
/// kept alive across requests. Transfers block their pool thread, never an event loop or the Swift
/// cooperative pool; the thread count is the concurrency limit (extra requests wait their turn).
package final class WebhookClient: Sendable {
    /// The version sent in the `User-Agent` header.
    package static let version = "0.1.0"
    /// How much of a response body is kept for logs and reply texts.
    package static let snippetLimit = 64 * 1024

    private let pool: NIOThreadPool
    /// Delivery threads: requests in flight at most.
    package let threads: Int
    private let handles = ThreadSpecificVariable<HandleBox>()

    /// Starts `threads` delivery threads.
    package init(threads: Int = 8) {
        CurlGlobal.initialize()
        self.threads = max(1, threads)
        pool = NIOThreadPool(numberOfThreads: self.threads)
        pool.start()
    }

    /// POSTs one request; returns the outcome (never throws: failures are in the response).
    package func post(_ request: WebhookRequest) async -> WebhookResponse {
        await withCheckedContinuation { continuation in
            post(request) { continuation.resume(returning: $0) }
        }
    }

    /// POSTs one request and calls `completion` with the outcome on the delivery thread that
    /// sent it (or at once, when the client is shut down). No task is created: a caller that
    /// waits with a deadline of its own gets the response without a hop through the
    /// cooperative pool.
    package func post(_ request: WebhookRequest, completion: @escaping @Sendable (WebhookResponse) -> Void) {
        pool.submit { [handles] state in
            guard case .active = state else {
                completion(
                    WebhookResponse(
                        status: 0,
                        error: WebhookTransportError(kind: .shutdown, message: "webhook client is shut down")
                    )
                )
                return
            }
            let box: HandleBox
            if let existing = handles.currentValue {
                box = existing
            } else {
                box = HandleBox()
                handles.currentValue = box
            }
            guard let handle = box.handle else {
                completion(
                    WebhookResponse(
                        status: 0,
                        error: WebhookTransportError(kind: .other, message: "curl_easy_init failed")
                    )
                )
                return
            }
            completion(handle.post(request, snippetLimit: Self.snippetLimit))
        }
    }

    /// Waits for running transfers to finish (each is bounded by its timeout) and stops the threads.
    package func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}

/// Holds a thread's easy handle; only ever touched by its own thread (see `CurlEasyHandle`).
private final class HandleBox: @unchecked Sendable {
    let handle = CurlEasyHandle()
}
