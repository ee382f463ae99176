import Synchronization
import WebhookClient

/// A webhook request running on the transfer thread: the sync attempt waits for its response
/// until the sync budget ends (``response(before:timer:)``); past it, whoever records the late
/// outcome waits for the rest (``response()``). The transfer thread hands the response over
/// with ``finish(_:)`` — no task in between, so a message's answer costs one hand-off.
final class InFlightRequest: Sendable {
    private struct State {
        var response: WebhookResponse?
        var waiters: [UInt64: CheckedContinuation<WebhookResponse?, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Hands the response to whoever waits (once; later calls are ignored).
    func finish(_ response: WebhookResponse) {
        let waiters = state.withLock { state -> [CheckedContinuation<WebhookResponse?, Never>] in
            guard state.response == nil else { return [] }
            state.response = response
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: response) }
    }

    /// The response, or `nil` when `deadline` (milliseconds of the timer's clock) comes first;
    /// the request keeps running then. No deadline: waits for the response.
    func response(before deadline: Int64?, timer: DeadlineTimer?) async -> WebhookResponse? {
        let box = Mutex<DeadlineTimer.Token?>(nil)
        let response = await withCheckedContinuation { (continuation: CheckedContinuation<WebhookResponse?, Never>) in
            let (ready, id) = state.withLock { state -> (WebhookResponse??, UInt64) in
                if let response = state.response { return (.some(response), 0) }
                state.nextWaiter += 1
                state.waiters[state.nextWaiter] = continuation
                return (nil, state.nextWaiter)
            }
            if let ready {
                continuation.resume(returning: ready)
                return
            }
            guard let deadline, let timer else { return }
            let token = timer.schedule(at: deadline) { [self] in self.giveUp(id) }
            box.withLock { $0 = token }
        }
        if let token = box.withLock({ $0 }) { timer?.cancel(token) }
        return response
    }

    /// Waits for the response, however long the request takes (each is bounded by its timeout).
    func response() async -> WebhookResponse {
        await response(before: nil, timer: nil)
            ?? WebhookResponse(status: 0, error: WebhookTransportError(kind: .other, message: "no response"))
    }

    private func giveUp(_ id: UInt64) {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
        waiter?.resume(returning: nil)
    }
}
