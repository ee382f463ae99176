import Delivery
import Targets
import Testing

@Suite("Retry queue: due order, fairness, policies (pure, times given)")
struct RetryQueueTests {
    static func policies(_ names: [String], slots: Int = 6, rate: RateLimit? = nil) -> [String: EndpointPolicy] {
        Dictionary(
            uniqueKeysWithValues: names.map {
                (
                    $0,
                    EndpointPolicy(
                        limits: .init(
                            breakerThreshold: 1,
                            breakerCooldownMilliseconds: 10_000,
                            maxInFlight: slots,
                            rateLimit: rate
                        )
                    )
                )
            }
        )
    }

    @Test("entries go oldest due first, not before they are due; the wake time is the next due time")
    func dueOrder() {
        var queue = RetryQueue()
        var policies = Self.policies(["a"])
        queue.schedule("3", endpoint: "a", due: 300)
        queue.schedule("1", endpoint: "a", due: 100)
        queue.schedule("2", endpoint: "a", due: 200)
        var batch = queue.nextBatch(now: 50, policies: &policies, retryLimit: 8)
        #expect(batch.items.isEmpty && batch.wakeAt == 100)
        batch = queue.nextBatch(now: 250, policies: &policies, retryLimit: 8)
        #expect(batch.items.map(\.id) == ["1", "2"] && batch.wakeAt == 300)
        #expect(queue.isInFlight("1") && queue.due(of: "1") == 100)
        queue.finish("1", rescheduleAt: 1_000)
        queue.finish("2", rescheduleAt: nil)
        #expect(queue.due(of: "1") == 1_000 && queue.due(of: "2") == nil && queue.count == 2)
    }

    @Test("a reschedule replaces the old due time (the stale heap key is skipped)")
    func reschedule() {
        var queue = RetryQueue()
        var policies = Self.policies(["a"])
        queue.schedule("x", endpoint: "a", due: 100)
        queue.schedule("x", endpoint: "a", due: 5_000)
        let batch = queue.nextBatch(now: 1_000, policies: &policies, retryLimit: 8)
        #expect(batch.items.isEmpty && batch.wakeAt == 5_000 && queue.count == 1)
    }

    /// The symptom: an endpoint that hangs, with many due entries, took every retry slot, and a
    /// healthy endpoint's due retry waited for them (2 s became 17 s).
    @Test(
        "an endpoint with thousands of due entries holds only its share; the other's due entry goes in the same batch"
    )
    func fairShare() {
        var queue = RetryQueue()
        var policies = Self.policies(["hangs", "healthy"], slots: 6)
        for index in 0..<20_000 { queue.schedule("h\(index)", endpoint: "hangs", due: Int64(index % 100)) }
        queue.schedule("ok", endpoint: "healthy", due: 2_000)
        var batch = queue.nextBatch(now: 1_000, policies: &policies, retryLimit: 8)
        #expect(batch.items.count == 4, "hangs gets 8 / 2 endpoints = 4")
        #expect(batch.items.allSatisfy { $0.endpoint == "hangs" } && batch.wakeAt == 2_000)
        // Those four hang; nothing else of "hangs" may go, but "healthy" is due now.
        batch = queue.nextBatch(now: 2_000, policies: &policies, retryLimit: 8)
        #expect(batch.items.map(\.id) == ["ok"])
        #expect(policies["hangs"]!.retriesInFlight == 4 && policies["healthy"]!.retriesInFlight == 1)
    }

    @Test("alone with entries, an endpoint leaves one retry slot for the other configured endpoints")
    func reserveForIdleEndpoints() {
        var queue = RetryQueue()
        var policies = Self.policies(["busy", "idle"])
        for index in 0..<10 { queue.schedule("e\(index)", endpoint: "busy", due: 0) }
        var batch = queue.nextBatch(now: 0, policies: &policies, retryLimit: 4)
        #expect(batch.items.count == 2, "share of 4 among busy and one idle contender")
        var single = Self.policies(["busy"])
        var alone = RetryQueue()
        for index in 0..<10 { alone.schedule("e\(index)", endpoint: "busy", due: 0) }
        batch = alone.nextBatch(now: 0, policies: &single, retryLimit: 4)
        #expect(batch.items.count == 4, "the only endpoint may use every retry slot")
    }

    @Test("endpoints take turns: one entry each per turn, so the batch interleaves them")
    func roundRobin() {
        var queue = RetryQueue()
        var policies = Self.policies(["a", "b"])
        for index in 0..<3 {
            queue.schedule("a\(index)", endpoint: "a", due: 0)
            queue.schedule("b\(index)", endpoint: "b", due: 0)
        }
        let batch = queue.nextBatch(now: 10, policies: &policies, retryLimit: 4)
        #expect(
            batch.items.map(\.endpoint) == ["a", "b", "a", "b"] || batch.items.map(\.endpoint) == ["b", "a", "b", "a"]
        )
        #expect(batch.items.filter { $0.endpoint == "a" }.count == 2)
    }

    @Test("the breaker applies to retries: an open circuit waits for its end, then exactly one probe goes")
    func breakerAppliesToRetries() {
        var queue = RetryQueue()
        var policies = Self.policies(["a"])
        _ = policies["a"]!.record(transientFailure: true, now: 0)  // threshold 1: open until 10 000
        for index in 0..<5 { queue.schedule("e\(index)", endpoint: "a", due: 0) }
        var batch = queue.nextBatch(now: 100, policies: &policies, retryLimit: 8)
        #expect(batch.items.isEmpty && batch.wakeAt == 10_000)
        batch = queue.nextBatch(now: 10_000, policies: &policies, retryLimit: 8)
        #expect(batch.items.count == 1 && batch.items[0].probe)
        let probing = queue.nextBatch(now: 10_001, policies: &policies, retryLimit: 8)
        #expect(probing.items.isEmpty, "probing: the others wait for the probe's answer")
    }

    @Test("a rate-limited endpoint sends what its bucket allows and wakes when the next token comes")
    func rateLimited() {
        var queue = RetryQueue()
        var policies = Self.policies(["a"], rate: RateLimit(requests: 2, periodMilliseconds: 1_000))
        for index in 0..<5 { queue.schedule("e\(index)", endpoint: "a", due: 0) }
        let batch = queue.nextBatch(now: 0, policies: &policies, retryLimit: 8)
        #expect(batch.items.count == 2 && batch.wakeAt == 500)
    }

    @Test("an endpoint that is not configured keeps its entries and does not wake anyone")
    func unconfigured() {
        var queue = RetryQueue()
        var policies = Self.policies(["a"])
        queue.schedule("gone", endpoint: "removed", due: 0)
        let batch = queue.nextBatch(now: 10, policies: &policies, retryLimit: 8)
        #expect(batch.items.isEmpty && batch.wakeAt == nil && queue.count == 1)
    }

    @Test("finishing work (remove a delivered entry, move a dead one) goes when due, whatever the endpoint's state")
    func finishingWork() {
        var queue = RetryQueue()
        var policies = Self.policies(["a"], slots: 1)
        _ = policies["a"]!.record(transientFailure: true, now: 0)  // open
        queue.schedule("done", endpoint: "a", due: 5, work: .complete)
        queue.schedule("dead", endpoint: "unknown", due: 5, work: .deadLetter(reason: "too old"))
        let batch = queue.nextBatch(now: 10, policies: &policies, retryLimit: 8)
        #expect(Set(batch.items.map(\.id)) == ["done", "dead"])
        #expect(policies["a"]!.inFlight == 0, "no slot taken for finishing work")
    }

    @Test("an entry taken by someone else (a late sync attempt) is not handed out until it comes back")
    func takenEntries() {
        var queue = RetryQueue()
        var policies = Self.policies(["a"])
        queue.schedule("late", endpoint: "a", due: 0)
        queue.take("late")
        let none = queue.nextBatch(now: 10, policies: &policies, retryLimit: 8)
        #expect(none.items.isEmpty)
        queue.schedule("late", endpoint: "a", due: 20)  // rescheduled while in flight: applied on return
        queue.finish("late", rescheduleAt: 30)
        #expect(queue.due(of: "late") == 30)
        let back = queue.nextBatch(now: 30, policies: &policies, retryLimit: 8)
        #expect(back.items.map(\.id) == ["late"])
    }

    @Test("removing 20 000 entries one by one keeps the heap small (stale keys are compacted)")
    func compaction() {
        var queue = RetryQueue()
        var policies = Self.policies(["a"])
        for index in 0..<20_000 { queue.schedule("e\(index)", endpoint: "a", due: Int64(index)) }
        for index in 0..<19_999 { queue.remove("e\(index)") }
        #expect(queue.count == 1)
        let batch = queue.nextBatch(now: 100_000, policies: &policies, retryLimit: 8)
        #expect(batch.items.map(\.id) == ["e19999"])
    }
}
