import Synchronization

/// Wakes the engine's scheduler: ``ring()`` after anything that can make an entry go (an
/// enqueue, a freed slot, a breaker change, a reload); ``wait(untilMilliseconds:clock:)``
/// returns at the next ring, at the given time, or when the task is cancelled — whichever comes
/// first. A ring with nobody waiting is kept for the next wait. One waiter at a time.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func ring() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.rung = true
            return nil
        }
        waiter?.resume()
    }

    func wait(untilMilliseconds deadline: Int64?, clock: DeliveryClock) async {
        let timer = deadline.map { deadline in
            Task {
                try await clock.sleep(untilMilliseconds: deadline)
                self.ring()
            }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now: Bool = state.withLock { state in
                    if state.rung || Task.isCancelled {
                        state.rung = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            ring()
        }
        timer?.cancel()
    }
}

/// A one-shot gate: ``wait()`` returns once ``open()`` was called.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }
}
