import Foundation
import LMTPHook
import LMTPHookTestSupport
import NIOConcurrencyHelpers

/// LMTP clients that behave like an MTA toward a daemon that is killed again and again: each
/// sends message after message and retries one until it gets a 250 (a message without one is the
/// MTA's to keep), recording the webhook id of every 250 and the transactions that broke under
/// them. Runs until `minimum` messages are acknowledged and `done()` says so.
struct AckingLoad: Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let socket: String
    let subjectPrefix: String
    /// Every this many messages, one bigger than the 1 MiB spill threshold (kept in a file and
    /// linked into the spool); `nil`: all small.
    var bigEvery: Int? = nil
    /// Webhook ids of the messages that got 250.
    let acked = NIOLockedValueBox<[String]>([])
    /// Which generation of the daemon the clients talk to (the test moves it on at each kill).
    let generation = NIOLockedValueBox(0)
    /// Transactions that broke after MAIL was sent, per daemon generation.
    let broken = NIOLockedValueBox<[Int: Int]>([:])

    var ackedIDs: Set<String> { Set(acked.withLockedValue { $0 }) }

    /// Waits (up to 60 s) until `sink` accepted every acknowledged message and `drained()` says
    /// the spool is empty; returns the ids of every request the sink accepted, repeats included.
    func waitForDelivery(to sink: RecordingSink, drained: () throws -> Bool) async throws -> [String] {
        let acknowledged = ackedIDs
        var received: [String] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            received = sink.accepted.compactMap { try? json($0.body)["id"] as? String }
            if try acknowledged.isSubset(of: Set(received)) && drained() { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        return received
    }

    /// `workers` clients until at least `minimum` messages are acknowledged and `done()` holds.
    func run(workers: Int, minimum: Int, until done: @escaping @Sendable () -> Bool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    try await blocking { try self.client(worker, minimum: minimum, until: done) }
                }
            }
            try await group.waitForAll()
        }
    }

    private func client(_ worker: Int, minimum: Int, until done: @Sendable () -> Bool) throws {
        var index = 0
        while acked.withLockedValue({ $0.count }) < minimum || !done() {
            let subject = "\(subjectPrefix)-\(worker)-\(index)"
            index += 1
            // An MTA keeps trying for days; these clients give up after a minute of restarts
            // (a debug daemon on a FUSE spool, with the machine shared by the whole suite, can
            // take seconds to come back).
            let giveUp = ContinuousClock.now + .seconds(60)
            var last = "no attempt"
            while true {
                guard ContinuousClock.now < giveUp else {
                    throw Failure(description: "\(subject) was never acknowledged within 60 s (last: \(last))")
                }
                let current = generation.withLockedValue { $0 }
                guard let client = try? LMTPClientConnection(unixPath: socket, timeoutSeconds: 10),
                    (try? client.readReply())?.code == 220,
                    (try? client.send("LHLO client.test\r\n")) != nil,
                    (try? client.readReply())?.code == 250
                else {
                    last = "no connection"
                    usleep(20_000)  // the daemon is down or restarting
                    continue
                }
                let big = bigEvery.map { index % $0 == 1 } ?? false
                let message = sampleMessage(
                    subject: subject,
                    id: "<\(subject)@t>",
                    body: big ? String(repeating: "a line of a big message \(subject)\r\n", count: 40_000) : "Body\r\n"
                )
                do {
                    let reply = try client.deliver(
                        lhlo: nil,
                        from: "a@example.org",
                        to: ["r@example.test"],
                        message: message
                    ).first
                    if let reply, reply.code == 250, let text = reply.lines.last, let range = text.range(of: "id=") {
                        acked.withLockedValue { $0.append(String(text[range.upperBound...])) }
                        break
                    }
                    last = "reply \(reply?.code ?? 0) \(reply?.lines.last ?? "")"
                } catch {
                    last = "\(error)"
                    broken.withLockedValue { $0[current, default: 0] += 1 }
                }
                usleep(20_000)
            }
        }
    }
}

/// A receiver that flaps until cancelled: up, 503, slower than `slowMilliseconds`, every 400 ms.
func flap(_ sink: RecordingSink, slowMilliseconds: Int) -> Task<Void, Never> {
    Task {
        var phase = 0
        while !Task.isCancelled {
            switch phase % 3 {
            case 0: sink.answer(nil)
            case 1: sink.answer(503)
            default: sink.answer(nil, afterMilliseconds: slowMilliseconds)
            }
            phase += 1
            try? await Task.sleep(for: .milliseconds(400))
        }
    }
}
