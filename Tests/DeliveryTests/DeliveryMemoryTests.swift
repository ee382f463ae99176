import Delivery
import Synchronization
import Testing

/// The memory budget every attempt takes its share from: in order, a message bigger than the
/// whole budget alone, cancelled waiters out of line, reservations released by their last holder.
@Suite("Delivery memory budget")
struct DeliveryMemoryTests {
    /// Starts `acquire(bytes)` in a task; `granted` runs when it got them.
    private func waiter(
        _ memory: DeliveryMemory,
        _ bytes: Int,
        granted: @escaping @Sendable () -> Void
    ) -> Task<Bool, Never> {
        Task {
            let ok = await memory.acquire(bytes)
            if ok { granted() }
            return ok
        }
    }

    /// Waits until `count` attempts wait in line.
    private func inLine(_ memory: DeliveryMemory, _ count: Int) async {
        while memory.waiting < count { await Task.yield() }
    }

    @Test("takes what fits at once; waiters go in order as bytes come back; a big one is not overtaken")
    func inOrder() async throws {
        let memory = DeliveryMemory(limit: 100)
        #expect(await memory.acquire(60))
        #expect(memory.held == 60)
        let order = Order()
        let big = waiter(memory, 70) { order.add("big") }
        await inLine(memory, 1)
        let small = waiter(memory, 10) { order.add("small") }
        await inLine(memory, 2)
        #expect(order.names.isEmpty, "10 bytes would fit, but the big one waits first")
        memory.release(60)
        let bigGot = await big.value
        let smallGot = await small.value
        #expect(bigGot && smallGot)
        #expect(order.names == ["big", "small"])
        #expect(memory.held == 80)
        memory.release(80)
        #expect(memory.held == 0)
    }

    @Test("a message bigger than the whole budget goes alone")
    func biggerThanBudget() async throws {
        let memory = DeliveryMemory(limit: 100)
        #expect(await memory.acquire(500), "nothing else held: it goes")
        let order = Order()
        let next = waiter(memory, 1) { order.add("next") }
        await inLine(memory, 1)
        #expect(order.names.isEmpty)
        memory.release(500)
        #expect(await next.value)
        #expect(memory.held == 1)
    }

    @Test("a cancelled waiter leaves the line without holding anything, and does not block those behind it")
    func cancelled() async throws {
        let memory = DeliveryMemory(limit: 100)
        #expect(await memory.acquire(100))
        let order = Order()
        let cancelled = waiter(memory, 50) { order.add("cancelled") }
        await inLine(memory, 1)
        let behind = waiter(memory, 40) { order.add("behind") }
        await inLine(memory, 2)
        cancelled.cancel()
        #expect(await cancelled.value == false)
        memory.release(60)
        #expect(await behind.value)
        #expect(order.names == ["behind"])
        #expect(memory.held == 80)
    }

    @Test("a reservation shrinks to what is still needed and is released when its last holder lets go")
    func reservation() async throws {
        let memory = DeliveryMemory(limit: 100)
        var reservation = await memory.reserve(80)
        #expect(memory.held == 80)
        reservation?.shrink(to: 30)
        #expect(memory.held == 30)
        reservation?.shrink(to: 90)
        #expect(memory.held == 30, "never grows (growing would have to wait)")
        var lateAttempt = reservation  // a late attempt holds its message's share too
        reservation = nil
        #expect(memory.held == 30, "still held by the late attempt")
        #expect(lateAttempt?.bytes == 30)
        lateAttempt = nil
        #expect(memory.held == 0, "released with its last holder")
    }

    @Test("a larger budget after a reload admits the waiters that fit now")
    func update() async throws {
        let memory = DeliveryMemory(limit: 100)
        #expect(await memory.acquire(90))
        let order = Order()
        let next = waiter(memory, 50) { order.add("next") }
        await inLine(memory, 1)
        memory.update(limit: 200)
        #expect(await next.value)
        #expect(memory.held == 140)
    }
}

/// Names in the order things happened (shared between tasks).
private final class Order: Sendable {
    private let list = Mutex<[String]>([])
    func add(_ name: String) { list.withLock { $0.append(name) } }
    var names: [String] { list.withLock { $0 } }
}
