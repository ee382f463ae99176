import Synchronization

/// Shares one `fsync` of the queue directory among concurrent writers: each writer renames its
/// entry in, takes a ticket, and waits until a sync that started after its rename has finished.
/// The first waiter becomes the leader and syncs for everyone who renamed so far (leader/follower
/// group commit), so durable throughput grows with concurrency.
final class GroupCommit: Sendable {
    private struct State {
        var issued: UInt64 = 0
        var synced: UInt64 = 0
        var syncing = false
        var failure: (ticket: UInt64, error: SpoolError)? = nil
    }

    private let state = Mutex(State())
    private let condition = ConditionLock()
    private let sync: @Sendable () throws(SpoolError) -> Void

    init(sync: @escaping @Sendable () throws(SpoolError) -> Void) {
        self.sync = sync
    }

    /// Call after the rename; returns once the directory is durably synced (or throws).
    func commit() throws(SpoolError) {
        let ticket = state.withLock { state -> UInt64 in
            state.issued += 1
            return state.issued
        }
        while true {
            let seen = condition.generation()
            let role: Role = state.withLock { state in
                if let failure = state.failure, failure.ticket >= ticket { return .failed(failure.error) }
                if state.synced >= ticket { return .done }
                if state.syncing { return .wait }
                state.syncing = true
                return .lead(state.issued)
            }
            switch role {
            case .done: return
            case .failed(let error): throw error
            case .wait:
                condition.wait(after: seen)
            case .lead(let upTo):
                var failure: SpoolError? = nil
                do { try sync() } catch { failure = error }
                state.withLock { state in
                    state.syncing = false
                    if let failure {
                        state.failure = (upTo, failure)
                    } else {
                        state.synced = max(state.synced, upTo)
                    }
                }
                condition.broadcast()
                if let failure { throw failure }
                return
            }
        }
    }

    private enum Role {
        case done, wait
        case lead(UInt64)
        case failed(SpoolError)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A condition variable with a generation counter: `waitForChange` returns after the next broadcast.
final class ConditionLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var generationCount: UInt64 = 0

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func generation() -> UInt64 {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return generationCount
    }

    /// Returns once a broadcast after generation `seen` happened (at once if one already did).
    func wait(after seen: UInt64) {
        pthread_mutex_lock(&mutex)
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_nsec += 50_000_000  // re-check at least every 50 ms
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        while generationCount == seen {
            if pthread_cond_timedwait(&condition, &mutex, &deadline) == ETIMEDOUT { break }
        }
        pthread_mutex_unlock(&mutex)
    }

    func broadcast() {
        pthread_mutex_lock(&mutex)
        generationCount &+= 1
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }
}
