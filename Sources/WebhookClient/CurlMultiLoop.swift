import CCurl
import DequeModule
import NIOConcurrencyHelpers
import NIOPosix

/// All webhook transfers on one thread, through one libcurl multi handle: requests handed in
/// from any thread wait in line, at most `maxTransfers` run at once, and each one's response is
/// handed to its completion on this thread as it ends. One thread waiting in `curl_multi_poll`
/// for every socket, instead of a blocked thread per transfer, keeps the wake-ups per request at
/// one for the answer (and none when others are already being served) — the thread hand-offs
/// that were most of the relay's context switches under load.
///
/// Blocking work on this thread is limited to what libcurl does without blocking, plus reading
/// a file-backed request body a chunk at a time (and once whole, to sign it).
///
/// `@unchecked Sendable`: the multi handle is used on the loop's thread only, except
/// `curl_multi_wakeup` (documented as callable from any thread) and the clean-up after the thread
/// has stopped.
final class CurlMultiLoop: @unchecked Sendable {
    typealias Completion = @Sendable (WebhookResponse) -> Void

    private struct Inbox {
        var requests: [(WebhookRequest, Completion)] = []
        var stopping = false
        /// What the loop reported last: transfers running, and requests waiting for a turn.
        var running = 0
        var waiting = 0
    }

    private let inbox = NIOLockedValueBox(Inbox())
    private let multi: UnsafeMutableRawPointer?
    private let thread: NIOThreadPool
    let maxTransfers: Int
    private let snippetLimit: Int

    /// Starts the loop's thread.
    init(maxTransfers: Int, snippetLimit: Int) {
        CurlGlobal.initialize()
        self.maxTransfers = max(1, maxTransfers)
        self.snippetLimit = snippetLimit
        multi = curl_multi_init()
        thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        thread.submit { [self] _ in self.run(LoopState()) }
    }

    /// Queues a request; `completion` runs on the loop's thread (at once, on the caller's
    /// thread, when the loop is stopping).
    func submit(_ request: WebhookRequest, completion: @escaping Completion) {
        guard multi != nil else {
            completion(
                WebhookResponse(
                    status: 0,
                    error: WebhookTransportError(kind: .other, message: "curl_multi_init failed")
                )
            )
            return
        }
        let accepted = inbox.withLockedValue { inbox -> Bool in
            guard !inbox.stopping else { return false }
            inbox.requests.append((request, completion))
            return true
        }
        guard accepted else {
            completion(Self.shutDown)
            return
        }
        if let multi { curl_multi_wakeup(multi) }
    }

    /// Transfers running and requests waiting for a turn (counted in ``submit(_:completion:)``
    /// until the loop takes them up), as of the loop's last pass.
    var load: (running: Int, waiting: Int) {
        inbox.withLockedValue { ($0.running, $0.waiting + $0.requests.count) }
    }

    /// Lets the running transfers finish (each is bounded by its timeout), answers the ones still
    /// waiting with a shutdown error, and stops the thread.
    func shutdown() async {
        inbox.withLockedValue { $0.stopping = true }
        if let multi { curl_multi_wakeup(multi) }
        try? await thread.shutdownGracefully()
        if let multi { curl_multi_cleanup(multi) }
    }

    static let shutDown = WebhookResponse(
        status: 0,
        error: WebhookTransportError(kind: .shutdown, message: "webhook client is shut down")
    )

    /// What only the loop's thread touches.
    private final class LoopState {
        var waiting = Deque<(WebhookRequest, Completion)>()
        var running: [UnsafeMutableRawPointer: (CurlEasyHandle, CurlEasyHandle.Transfer, Completion)] = [:]
        var idle: [CurlEasyHandle] = []
    }

    private func run(_ loop: LoopState) {
        guard let multi else { return }  // every request is answered in `submit`
        while true {
            let (new, stopping) = inbox.withLockedValue { inbox in
                defer { inbox.requests = [] }
                return (inbox.requests, inbox.stopping)
            }
            loop.waiting.append(contentsOf: new)
            if stopping {
                // Nothing new starts; what runs finishes.
                for (_, completion) in loop.waiting { completion(Self.shutDown) }
                loop.waiting.removeAll()
                if loop.running.isEmpty { break }
            }
            while loop.running.count < maxTransfers, let (request, completion) = loop.waiting.popFirst() {
                guard let easy = loop.idle.popLast() ?? CurlEasyHandle() else {
                    completion(
                        WebhookResponse(
                            status: 0,
                            error: WebhookTransportError(kind: .other, message: "curl_easy_init failed")
                        )
                    )
                    continue
                }
                switch easy.start(request, snippetLimit: snippetLimit) {
                case .answered(let response):
                    loop.idle.append(easy)
                    completion(response)
                case .transfer(let transfer):
                    let added = curl_multi_add_handle(multi, easy.handle)
                    guard added == CURLM_OK else {
                        loop.idle.append(easy)
                        completion(
                            WebhookResponse(
                                status: 0,
                                error: WebhookTransportError(
                                    kind: .other,
                                    message: "curl_multi_add_handle: \(String(cString: curl_multi_strerror(added)))"
                                )
                            )
                        )
                        continue
                    }
                    loop.running[easy.handle] = (easy, transfer, completion)
                }
            }
            var active: Int32 = 0
            _ = curl_multi_perform(multi, &active)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                    let (easy, transfer, completion) = loop.running.removeValue(forKey: handle)
                else { continue }
                let result = message.pointee.data.result
                curl_multi_remove_handle(multi, handle)
                let response = easy.finish(transfer, result: result)
                loop.idle.append(easy)
                completion(response)
            }
            let (running, waiting) = (loop.running.count, loop.waiting.count)
            inbox.withLockedValue { inbox in
                inbox.running = running
                inbox.waiting = waiting
            }
            if !loop.waiting.isEmpty && loop.running.count < maxTransfers { continue }
            // Sleeps until a socket is ready, curl's next timeout, or a wake-up (a new request).
            _ = curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        loop.idle.removeAll()
    }
}
