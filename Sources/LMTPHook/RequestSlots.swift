import NIOConcurrencyHelpers

/// Requests in flight per endpoint, bounded: a request takes a slot, or waits in line for one up
/// to a deadline. One endpoint that hangs can then hold only its own slots, never every delivery
/// thread, and the others keep flowing.
final class RequestSlots: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var busy: [String: Int] = [:]
        var waiters: [String: [Waiter]] = [:]
        var nextID: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    /// Takes a slot of `name` (at most `limit` busy), waiting up to `maxWait`; `false` when none
    /// came free in time.
    func acquire(_ name: String, limit: Int, maxWait: Duration) async -> Bool {
        let fast: Bool? = state.withLockedValue { state in
            if state.busy[name, default: 0] < limit {
                state.busy[name, default: 0] += 1
                return true
            }
            return maxWait <= .zero ? false : nil
        }
        if let fast { return fast }
        let id = state.withLockedValue { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        let timeout = Task {
            try? await Task.sleep(for: maxWait)
            self.giveUp(name, id)
        }
        defer { timeout.cancel() }
        return await withCheckedContinuation { continuation in
            let granted: Bool = state.withLockedValue { state in
                if state.busy[name, default: 0] < limit {
                    state.busy[name, default: 0] += 1
                    return true
                }
                state.waiters[name, default: []].append(Waiter(id: id, continuation: continuation))
                return false
            }
            if granted { continuation.resume(returning: true) }
        }
    }

    /// Frees a slot: the longest waiter gets it, else it becomes free.
    func release(_ name: String) {
        let next: Waiter? = state.withLockedValue { state in
            if var line = state.waiters[name], !line.isEmpty {
                let first = line.removeFirst()
                state.waiters[name] = line.isEmpty ? nil : line
                return first  // the slot passes on: busy stays the same
            }
            let busy = state.busy[name, default: 1] - 1
            state.busy[name] = busy > 0 ? busy : nil
            return nil
        }
        next?.continuation.resume(returning: true)
    }

    private func giveUp(_ name: String, _ id: UInt64) {
        let waiter: Waiter? = state.withLockedValue { state in
            guard var line = state.waiters[name], let index = line.firstIndex(where: { $0.id == id }) else {
                return nil
            }
            let waiter = line.remove(at: index)
            state.waiters[name] = line.isEmpty ? nil : line
            return waiter
        }
        waiter?.continuation.resume(returning: false)
    }
}
