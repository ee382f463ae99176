import NIOConcurrencyHelpers

/// Bounds what is handed to the handler at once — messages, and message bytes (a message is held
/// whole in memory while it is parsed and rendered) — and how many complete messages may wait for
/// their turn. A message that finds the queue full is refused at once (the caller answers `451`),
/// so a slow webhook or a burst of big mail makes the MTA hold mail instead of lmtphook's memory
/// growing. Waiting messages go in arrival order; one larger than the byte budget runs alone.
final class DeliveryGate: Sendable {
    private struct Waiter {
        let weight: Int
        let continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var active = 0
        var bytes = 0
        var waiting: [Waiter] = []
        var waitingStart = 0

        var queued: Int { waiting.count - waitingStart }
    }

    let slots: Int
    let byteBudget: Int
    let queueLimit: Int
    private let state = NIOLockedValueBox(State())

    init(slots: Int, byteBudget: Int, queueLimit: Int) {
        self.slots = slots
        self.byteBudget = byteBudget
        self.queueLimit = queueLimit
    }

    private func fits(_ weight: Int, _ state: State) -> Bool {
        state.active < slots && (state.bytes + weight <= byteBudget || state.active == 0)
    }

    /// Waits for a turn for a message of `weight` bytes; `false` (at once) when the queue is full.
    func enter(weight: Int) async -> Bool {
        enum Admission { case now, queued, full }
        var admission = Admission.full
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let decided: Admission = state.withLockedValue { state in
                if state.queued == 0 && fits(weight, state) {
                    state.active += 1
                    state.bytes += weight
                    return .now
                }
                guard state.queued < queueLimit else { return .full }
                state.waiting.append(Waiter(weight: weight, continuation: continuation))
                return .queued
            }
            admission = decided
            if decided != .queued { continuation.resume() }
        }
        return admission != .full
    }

    /// Ends a turn; admits waiting messages, in order, while they fit.
    func leave(weight: Int) {
        let admitted: [CheckedContinuation<Void, Never>] = state.withLockedValue { state in
            state.active -= 1
            state.bytes -= weight
            var admitted: [CheckedContinuation<Void, Never>] = []
            while state.queued > 0 {
                let next = state.waiting[state.waitingStart]
                guard fits(next.weight, state) else { break }
                state.active += 1
                state.bytes += next.weight
                state.waitingStart += 1
                admitted.append(next.continuation)
            }
            if state.waitingStart > 64 && state.waitingStart * 2 > state.waiting.count {
                state.waiting.removeFirst(state.waitingStart)
                state.waitingStart = 0
            }
            return admitted
        }
        for continuation in admitted { continuation.resume() }
    }

    /// Messages in delivery and waiting, for metrics and tests.
    var load: (active: Int, waiting: Int) {
        state.withLockedValue { ($0.active, $0.queued) }
    }
}
