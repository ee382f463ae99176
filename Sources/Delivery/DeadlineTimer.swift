import HeapModule
import Synchronization

/// Runs actions at deadlines of the engine's clock, from one loop (``run(clock:)``) instead of a
/// sleeping task per deadline. Built for the sync budget of every message: scheduling a deadline
/// no earlier than the one the loop sleeps until, and cancelling one, wake nobody — so a message
/// costs no thread hand-off for its timer. Cancelled deadlines are dropped when they come up.
final class DeadlineTimer: Sendable {
    /// Identifies a scheduled action, for ``cancel(_:)``.
    struct Token: Hashable, Sendable {
        fileprivate let value: UInt64
    }

    private struct Key: Comparable {
        var deadline: Int64
        var token: UInt64
        static func < (a: Key, b: Key) -> Bool { (a.deadline, a.token) < (b.deadline, b.token) }
    }

    private struct State {
        var heap = Heap<Key>()
        var actions: [UInt64: @Sendable () -> Void] = [:]
        var nextToken: UInt64 = 0
        /// What the loop sleeps until: `nil` while it runs or waits for a first deadline.
        var sleepingUntil: Int64? = nil
        var idle = true
    }

    private let state = Mutex(State())
    private let doorbell = Doorbell()

    /// Runs `action` at `deadline` (milliseconds of the engine's clock) unless cancelled first.
    /// The action runs on the timer's loop: it must be quick (resume a continuation, say).
    func schedule(at deadline: Int64, _ action: @escaping @Sendable () -> Void) -> Token {
        let (token, wake) = state.withLock { state -> (UInt64, Bool) in
            state.nextToken += 1
            state.heap.insert(Key(deadline: deadline, token: state.nextToken))
            state.actions[state.nextToken] = action
            let wake = state.idle || (state.sleepingUntil.map { deadline < $0 } ?? false)
            if wake { state.idle = false }
            return (state.nextToken, wake)
        }
        if wake { doorbell.ring() }
        return Token(value: token)
    }

    /// Forgets a scheduled action (nothing happens when it already ran).
    func cancel(_ token: Token) {
        _ = state.withLock { $0.actions.removeValue(forKey: token.value) }
    }

    /// Deadlines scheduled and not yet run or cancelled.
    var pending: Int { state.withLock { $0.actions.count } }

    /// Runs due actions until the task is cancelled.
    func run(clock: DeliveryClock) async {
        while !Task.isCancelled {
            let now = clock.nowMilliseconds
            let (due, next) = state.withLock { state -> ([@Sendable () -> Void], Int64?) in
                var due: [@Sendable () -> Void] = []
                while let top = state.heap.min {
                    guard let action = state.actions[top.token] else {
                        state.heap.removeMin()  // cancelled
                        continue
                    }
                    guard top.deadline <= now else { break }
                    state.heap.removeMin()
                    state.actions[top.token] = nil
                    due.append(action)
                }
                state.sleepingUntil = state.heap.min?.deadline
                state.idle = state.sleepingUntil == nil
                return (due, state.sleepingUntil)
            }
            for action in due { action() }
            guard due.isEmpty else { continue }
            await doorbell.wait(untilMilliseconds: next, clock: clock)
        }
    }
}
