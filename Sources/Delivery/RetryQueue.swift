import HeapModule

/// The retry state of the spool, owned by the engine alone: which entry is due when, for which
/// endpoint, and which are in flight. A priority queue per endpoint (by due time), so finding
/// the next due entry costs a heap peek, not a scan of every entry; ``nextBatch(now:policies:retryLimit:)``
/// picks what may go now, round-robin across endpoints, and says when to look again. Pure: times
/// are given by the caller, the policies are the engine's.
package struct RetryQueue: Sendable {
    /// What to do with an entry when it is due.
    package enum Work: Sendable, Equatable {
        /// Claim, read, POST, record the outcome.
        case attempt
        /// It was delivered, but removing it failed: remove it (never send it again).
        case complete
        /// It is a dead letter, but moving it failed: move it (never send it again).
        case deadLetter(reason: String)
    }

    /// One scheduled entry.
    package struct Item: Sendable, Equatable {
        package var id: String
        /// The endpoint's name (its configuration may be missing right now).
        package var endpoint: String
        package var due: Int64
        package var work: Work
        /// Set on an attempt handed out as its endpoint's breaker probe: its outcome (or
        /// ``EndpointPolicy/abandonProbe(now:)``) settles the breaker.
        package var probe = false

        package init(id: String, endpoint: String, due: Int64, work: Work) {
            self.id = id
            self.endpoint = endpoint
            self.due = due
            self.work = work
        }
    }

    private struct Key: Comparable {
        var due: Int64
        var id: String
        static func < (a: Key, b: Key) -> Bool { (a.due, a.id) < (b.due, b.id) }
    }

    private var items: [String: Item] = [:]
    private var heaps: [String: Heap<Key>] = [:]
    private var counts: [String: Int] = [:]
    private var inFlight: [String: Item] = [:]
    private var cursor = 0

    package init() {}

    /// Entries scheduled (not in flight).
    package var count: Int { items.count }

    /// Entries in flight (being attempted or finished).
    package var inFlightCount: Int { inFlight.count }

    /// Schedules (or reschedules) an entry; an entry in flight is updated when it comes back.
    package mutating func schedule(_ id: String, endpoint: String, due: Int64, work: Work = .attempt) {
        let item = Item(id: id, endpoint: endpoint, due: due, work: work)
        if inFlight[id] != nil {
            inFlight[id] = item
            return
        }
        if let old = items.updateValue(item, forKey: id) { forget(old) }
        counts[endpoint, default: 0] += 1
        heaps[endpoint, default: Heap()].insert(Key(due: due, id: id))
    }

    /// Removes an entry (delivered, dead, dropped, gone).
    package mutating func remove(_ id: String) {
        inFlight[id] = nil
        if let item = items.removeValue(forKey: id) { forget(item) }
    }

    /// When an entry is due, if it is scheduled or in flight.
    package func due(of id: String) -> Int64? { items[id]?.due ?? inFlight[id]?.due }

    /// Whether the entry is in flight.
    package func isInFlight(_ id: String) -> Bool { inFlight[id] != nil }

    /// Marks a scheduled entry as in flight (someone else — a late sync attempt — works on it).
    package mutating func take(_ id: String) {
        guard let item = items.removeValue(forKey: id) else { return }
        forget(item)
        inFlight[id] = item
    }

    /// An entry in flight comes back: rescheduled as given, or removed when `due` is `nil`.
    package mutating func finish(_ id: String, rescheduleAt due: Int64?, work: Work = .attempt) {
        guard let item = inFlight.removeValue(forKey: id) else { return }
        if let due { schedule(id, endpoint: item.endpoint, due: due, work: work) }
    }

    /// Names of endpoints with scheduled entries.
    package var endpoints: [String] { heaps.keys.filter { !(heaps[$0]?.isEmpty ?? true) }.sorted() }

    /// The scheduled entries of an endpoint.
    package func count(of endpoint: String) -> Int { counts[endpoint] ?? 0 }

    /// What may go now, and when to look again (`nil`: only an event — an enqueue, a freed slot,
    /// a reload — can change that).
    ///
    /// Finishing work (``Work/complete``, ``Work/deadLetter(reason:)``) goes when due, whatever
    /// the endpoint's state. An attempt goes when its endpoint is configured (a policy exists),
    /// its breaker admits it, it has a free slot and a token, fewer than `retryLimit` retries are
    /// in flight in all, and the endpoint holds fewer than its fair share of them (`retryLimit`
    /// divided among the endpoints that have entries, plus one when some configured endpoint has
    /// none), so an endpoint that hangs can hold only its share and the others keep flowing. Endpoints take turns (round-robin), one entry per
    /// turn, oldest due first. Slots and tokens of the returned attempts are taken in `policies`.
    package mutating func nextBatch(
        now: Int64,
        policies: inout [String: EndpointPolicy],
        retryLimit: Int
    ) -> (items: [Item], wakeAt: Int64?) {
        var batch: [Item] = []
        var wake: Int64? = nil
        func wakeAt(_ time: Int64) { wake = min(wake ?? time, time) }
        let names = endpoints
        guard !names.isEmpty else { return ([], nil) }
        // Endpoints with entries share the retry slots equally; when another configured endpoint
        // has none right now, it counts as one more contender, so a slot stays free for it.
        let contenders = max(names.count, min(policies.count, names.count + 1))
        let share = max(1, retryLimit / contenders)
        var retries = policies.values.reduce(0) { $0 + $1.retriesInFlight }
        var active = Set(names)
        var turn = cursor % names.count
        cursor &+= 1
        while !active.isEmpty {
            let name = names[turn % names.count]
            turn += 1
            guard active.contains(name) else { continue }
            guard let head = peek(name) else {
                active.remove(name)
                continue
            }
            if head.due > now {
                wakeAt(head.due)
                active.remove(name)
                continue
            }
            if head.work != .attempt {
                batch.append(pop(name)!)
                continue
            }
            guard var policy = policies[name] else {
                active.remove(name)  // not configured: waits for a reload
                continue
            }
            guard retries < retryLimit, policy.retriesInFlight < share else {
                active.remove(name)  // waits for a retry to finish
                continue
            }
            guard let ready = policy.retryReadyAt(now: now) else {
                active.remove(name)  // waits for a slot or the probe's answer
                continue
            }
            if ready > now {
                wakeAt(ready)
                active.remove(name)
                continue
            }
            let tokenWait = policy.takeTokenNow(now: now)
            if tokenWait > 0 {
                wakeAt(now + tokenWait)
                active.remove(name)
                continue
            }
            if case .open(let until) = policy.breakerAdmissionPreview(now: now) {
                policy.returnToken()
                if let until { wakeAt(until) }
                active.remove(name)
                continue
            }
            let admission = policy.admitThroughBreaker(now: now)
            _ = policy.takeSlot(retry: true)
            policies[name] = policy
            retries += 1
            var item = pop(name)!
            item.probe = admission == .probe
            inFlight[item.id] = item
            batch.append(item)
        }
        return (batch, wake)
    }

    // MARK: Heap upkeep

    /// The earliest live item of an endpoint (stale keys are dropped on the way).
    private mutating func peek(_ endpoint: String) -> Item? {
        while let key = heaps[endpoint]?.min {
            if let item = items[key.id], item.endpoint == endpoint, item.due == key.due { return item }
            _ = heaps[endpoint]?.popMin()
        }
        heaps[endpoint] = nil
        return nil
    }

    /// Takes the earliest live item of an endpoint and marks it in flight.
    private mutating func pop(_ endpoint: String) -> Item? {
        guard let item = peek(endpoint) else { return nil }
        _ = heaps[endpoint]?.popMin()
        items[item.id] = nil
        forget(item)
        inFlight[item.id] = item
        return item
    }

    /// Bookkeeping for an item that left `items` (its heap key is dropped lazily, when it reaches
    /// the top); a heap that is mostly stale keys is rebuilt, so memory stays bounded.
    private mutating func forget(_ item: Item) {
        let live = (counts[item.endpoint] ?? 1) - 1
        counts[item.endpoint] = live > 0 ? live : nil
        if let heap = heaps[item.endpoint], heap.count > 64, heap.count > 4 * live + 64 {
            heaps[item.endpoint] = Heap(
                items.values.lazy.filter { $0.endpoint == item.endpoint }.map { Key(due: $0.due, id: $0.id) }
            )
        }
    }
}
