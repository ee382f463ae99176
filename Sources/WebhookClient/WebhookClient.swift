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
        do {
            return try await pool.runIfActive { [handles] in
                let box: HandleBox
                if let existing = handles.currentValue {
                    box = existing
                } else {
                    box = HandleBox()
                    handles.currentValue = box
                }
                guard let handle = box.handle else {
                    return WebhookResponse(
                        status: 0,
                        error: WebhookTransportError(kind: .other, message: "curl_easy_init failed")
                    )
                }
                return handle.post(request, snippetLimit: Self.snippetLimit)
            }
        } catch {
            return WebhookResponse(
                status: 0,
                error: WebhookTransportError(kind: .shutdown, message: "webhook client is shut down")
            )
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
