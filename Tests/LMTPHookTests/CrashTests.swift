import Foundation
import LMTPHook
import LMTPHookTestSupport
import NIOConcurrencyHelpers
import Spool
import Testing

/// The durability invariant under crashes: `serve` is killed with SIGKILL again and again under
/// load while the receiver flaps; every message that got a 250 must reach the receiver.
@Suite("Crash safety (kill -9)", .serialized)
struct CrashTests {
    final class Daemon: @unchecked Sendable {
        let binary: String, arguments: [String]
        private let lock = NIOLock()
        private var process: Process?

        init(binary: String, arguments: [String]) {
            self.binary = binary
            self.arguments = arguments
        }

        func start(socket: String) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            lock.withLock { self.process = process }
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if let client = try? LMTPClientConnection(unixPath: socket, timeoutSeconds: 2), (try? client.readReply())?.code == 220 { return }
                usleep(20_000)
            }
        }

        func kill9() {
            lock.withLock {
                if let process, process.isRunning {
                    kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                }
            }
        }

        func stop() {
            lock.withLock {
                if let process, process.isRunning {
                    process.terminate()
                    process.waitUntilExit()
                }
            }
        }
    }

    @Test("300 messages, receiver flapping, 5 × kill -9: every 250 reaches the receiver")
    func killNineUnderLoad() async throws {
        let binary = try Binary.require()
        let sink = try await RecordingSink.start()
        let directory = TemporaryDirectory("lmtphook-crash")
        let socket = directory.file("lmtp.sock")
        let spool = directory.file("spool")
        let daemon = Daemon(binary: binary, arguments: [
            "serve", "--socket", socket, "--spool", spool, "--webhook", sink.url, "--sync-budget", "300ms", "--retry-schedule", "300ms",
            "--webhook-timeout", "2", "--log-level", "error",
        ])
        // Starting and killing block (a process, a wait): off the cooperative pool, which the
        // flapping receiver and the other suites' in-process relays need.
        try await blocking { try daemon.start(socket: socket) }

        let flapping = Task {
            var up = true
            while !Task.isCancelled {
                sink.answer(up ? nil : 503)
                up.toggle()
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        let acked = NIOLockedValueBox<[String]>([])
        let clients = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        for index in 0..<50 {
                            let subject = "crash-\(worker)-\(index)"
                            // A message without a 250 is the MTA's to retry: try it again until acknowledged.
                            for _ in 0..<40 {
                                let reply = try? await blocking { () -> LMTPClientConnection.Reply? in
                                    let client = try LMTPClientConnection(unixPath: socket, timeoutSeconds: 10)
                                    return try client.deliver(from: "a@example.org", to: ["r@example.test"], message: sampleMessage(subject: subject, id: "<\(subject)@t>")).first
                                }
                                if let reply = reply ?? nil, reply.code == 250, let text = reply.lines.last, let range = text.range(of: "id=") {
                                    acked.withLockedValue { $0.append(String(text[range.upperBound...])) }
                                    break
                                }
                                try await Task.sleep(for: .milliseconds(100))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        for _ in 0..<5 {
            try await Task.sleep(for: .milliseconds(900))
            try await blocking {
                daemon.kill9()
                try daemon.start(socket: socket)
            }
        }
        try await clients.value
        flapping.cancel()
        sink.answer(nil)

        let ackedIDs = Set(acked.withLockedValue { $0 })
        #expect(ackedIDs.count == 300, "every message was eventually acknowledged")
        let deadline = ContinuousClock.now + .seconds(60)
        var receivedIDs: [String] = []
        while ContinuousClock.now < deadline {
            receivedIDs = sink.accepted.compactMap { try? json($0.body)["id"] as? String }
            let spoolEmpty = try Spool(path: spool).ids().isEmpty
            if ackedIDs.isSubset(of: Set(receivedIDs)) && spoolEmpty { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let lost = ackedIDs.subtracting(receivedIDs)
        let duplicates = receivedIDs.count - Set(receivedIDs).count
        print("crash test: acked \(ackedIDs.count), receiver saw \(Set(receivedIDs).count) distinct ids in \(receivedIDs.count) accepted requests (\(duplicates) duplicate deliveries), lost \(lost.count)")
        #expect(lost.isEmpty, "acknowledged but never delivered: \(lost.sorted().prefix(10))")
        #expect(try Spool(path: spool).ids().isEmpty)
        try await blocking { daemon.stop() }
        directory.remove()
        await sink.stop()
    }
}
