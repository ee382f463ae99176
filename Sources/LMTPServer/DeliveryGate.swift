import NIOConcurrencyHelpers

/// Bounds the messages handed to the handler at once and the messages waiting for a slot. A
/// message that finds the queue full is refused at once (the caller answers `451`), so a slow
/// webhook makes the MTA hold mail instead of lmtphook's memory growing.
final class DeliveryGate: Sendable {
    private struct State {
        var active = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
        var waitingStart = 0
    }

    let slots: Int
    let queueLimit: Int
    private let state = NIOLockedValueBox(State())

    init(slots: Int, queueLimit: Int) {
        self.slots = slots
        self.queueLimit = queueLimit
    }

    /// Waits for a slot; `false` (at once) when all slots are busy and the queue is full.
    func enter() async -> Bool {
        enum Admission { case now, queued, full }
        var admission = Admission.full
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let decided: Admission = state.withLockedValue { state in
                if state.active < slots {
                    state.active += 1
                    return .now
                }
                guard state.waiting.count - state.waitingStart < queueLimit else { return .full }
                state.waiting.append(continuation)
                return .queued
            }
            admission = decided
            if decided != .queued { continuation.resume() }
        }
        return admission != .full
    }

    /// Gives the slot to the longest-waiting message, or frees it.
    func leave() {
        let next: CheckedContinuation<Void, Never>? = state.withLockedValue { state in
            guard state.waitingStart < state.waiting.count else {
                state.active -= 1
                return nil
            }
            let next = state.waiting[state.waitingStart]
            state.waitingStart += 1
            if state.waitingStart > 64 && state.waitingStart * 2 > state.waiting.count {
                state.waiting.removeFirst(state.waitingStart)
                state.waitingStart = 0
            }
            return next
        }
        next?.resume()
    }

    /// Messages in delivery and waiting, for metrics and tests.
    var load: (active: Int, waiting: Int) {
        state.withLockedValue { ($0.active, $0.waiting.count - $0.waitingStart) }
    }
}
