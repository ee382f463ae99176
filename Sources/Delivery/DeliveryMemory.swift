import Synchronization

/// Message bytes being rendered and sent at once, bounded (`limits.max_delivery_memory`): every
/// attempt — sync, late, retry, replay — takes its share before it reads and parses a message
/// and holds what its request keeps in memory until the request ends. Waiters are served in
/// order; a message bigger than the whole budget goes alone. A cancelled waiter leaves the line.
package final class DeliveryMemory: Sendable {
    private struct Waiter {
        let ticket: UInt64
        let bytes: Int
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var limit: Int
        var held = 0
        var waiters: [Waiter] = []
        var nextTicket: UInt64 = 0
    }

    private let state: Mutex<State>

    package init(limit: Int) { state = Mutex(State(limit: max(1, limit))) }

    /// The budget in bytes.
    package var limit: Int { state.withLock { $0.limit } }
    /// Bytes held now.
    package var held: Int { state.withLock { $0.held } }
    /// Attempts waiting in line.
    package var waiting: Int { state.withLock { $0.waiters.count } }

    /// Changes the budget (a reload); waiters that fit now go ahead.
    package func update(limit: Int) {
        let ready = state.withLock { state in
            state.limit = max(1, limit)
            return Self.admit(&state)
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    /// Takes `bytes`, waiting in line for them. Returns `false` (holding nothing) when the task
    /// was cancelled while it waited.
    package func acquire(_ bytes: Int) async -> Bool {
        let bytes = max(0, bytes)
        guard bytes > 0 else { return true }
        let ticket = state.withLock { state -> UInt64? in
            if state.waiters.isEmpty && Self.fits(bytes, state) {
                state.held += bytes
                return nil
            }
            state.nextTicket += 1
            return state.nextTicket
        }
        guard let ticket else { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resume = state.withLock { state -> Bool? in
                    if Task.isCancelled { return false }
                    state.waiters.append(Waiter(ticket: ticket, bytes: bytes, continuation: continuation))
                    // Released meanwhile: it may fit now.
                    let ready = Self.admit(&state)
                    if ready.contains(where: { $0.ticket == ticket }) {
                        for waiter in ready where waiter.ticket != ticket {
                            waiter.continuation.resume(returning: true)
                        }
                        return true
                    }
                    for waiter in ready { waiter.continuation.resume(returning: true) }
                    return nil
                }
                if let resume { continuation.resume(returning: resume) }
            }
        } onCancel: {
            let (cancelled, ready) = state.withLock { state -> (Waiter?, [Waiter]) in
                guard let index = state.waiters.firstIndex(where: { $0.ticket == ticket }) else { return (nil, []) }
                let waiter = state.waiters.remove(at: index)
                return (waiter, Self.admit(&state))
            }
            cancelled?.continuation.resume(returning: false)
            for waiter in ready { waiter.continuation.resume(returning: true) }
        }
    }

    /// Gives back `bytes`; the waiters that fit now go ahead.
    package func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let ready = state.withLock { state in
            state.held = max(0, state.held - bytes)
            return Self.admit(&state)
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    /// Takes `bytes` for one message as a ``Reservation`` (released when the last holder lets go
    /// of it); `nil` when the task was cancelled while it waited.
    package func reserve(_ bytes: Int) async -> Reservation? {
        guard await acquire(bytes) else { return nil }
        return Reservation(memory: self, bytes: max(0, bytes))
    }

    /// Budget held for one message while it is parsed, rendered and sent — by every attempt
    /// that shares its parse, late attempts included: released when the last of them ends.
    package final class Reservation: Sendable {
        private let memory: DeliveryMemory
        private let held: Mutex<Int>

        fileprivate init(memory: DeliveryMemory, bytes: Int) {
            self.memory = memory
            self.held = Mutex(bytes)
        }

        /// Bytes held now.
        package var bytes: Int { held.withLock { $0 } }

        /// Gives back what is no longer needed (never grows: growing would wait).
        package func shrink(to bytes: Int) {
            let freed = held.withLock { held -> Int in
                let freed = max(0, held - max(0, bytes))
                held -= freed
                return freed
            }
            memory.release(freed)
        }

        deinit { memory.release(held.withLock { $0 }) }
    }

    private static func fits(_ bytes: Int, _ state: State) -> Bool {
        state.held == 0 || state.held + bytes <= state.limit
    }

    /// Admits waiters from the front of the line while they fit (in order: a big one is not overtaken).
    private static func admit(_ state: inout State) -> [Waiter] {
        var ready: [Waiter] = []
        while let first = state.waiters.first, fits(first.bytes, state) {
            state.held += first.bytes
            ready.append(state.waiters.removeFirst())
        }
        return ready
    }
}
