import Foundation
import LMTPHook
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `lmtphook-bench load`: an open-loop LMTP load at a fixed rate. Message *i* is due at
/// start + i/rate; each of the connections takes the next due message, waits for its time, sends
/// it, and records latency from the *due* time to the last reply (so a server that falls behind
/// shows the queueing delay instead of hiding it: no coordinated omission, as long as there are
/// enough connections). Prints `rate= achieved= p50_ms= p99_ms= max_ms= ok= failed=`.
enum PacedLoad {
    static func main(_ arguments: [String]) {
        var arguments = arguments
        var socket: String?
        var tcp: (String, Int)?
        var rate = 1000.0
        var count = 10_000
        var connections = 16
        var size = 2048
        var rcpts = 1
        while let argument = arguments.first {
            arguments.removeFirst()
            let value = arguments.isEmpty ? "" : arguments.removeFirst()
            switch argument {
            case "--socket": socket = value
            case "--tcp":
                let parts = value.split(separator: ":")
                tcp = (String(parts.first ?? "127.0.0.1"), Int(parts.last ?? "") ?? 0)
            case "--rate": rate = Double(value) ?? rate
            case "--count": count = Int(value) ?? count
            case "--conns": connections = Int(value) ?? connections
            case "--size": size = Int(value) ?? size
            case "--rcpts": rcpts = Int(value) ?? rcpts
            default:
                print("unknown option \(argument)")
                exit(64)
            }
        }
        guard socket != nil || tcp != nil else {
            print("give --socket PATH or --tcp HOST:PORT")
            exit(64)
        }
        let (socketPath, address, pace, total) = (socket, tcp, rate, count)
        let message = makeMessage(size: size)
        let recipients = (0..<rcpts).map { "rcpt\($0)@example.test" }
        let next = Atomic<Int>(0)
        let latencies = Mutex<[Double]>([])
        let failures = Atomic<Int>(0)
        let start = now() + 0.2
        let group = DispatchGroup()
        for _ in 0..<connections {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var connection: LMTPClientConnection?
                var first = true
                while true {
                    let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if index >= total { break }
                    let due = start + Double(index) / pace
                    let wait = due - now()
                    if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
                    do {
                        if connection == nil {
                            connection =
                                try socketPath.map { try LMTPClientConnection(unixPath: $0) }
                                ?? LMTPClientConnection(host: address!.0, port: address!.1)
                            first = true
                        }
                        let replies = try connection!.deliver(
                            lhlo: first ? "load.test" : nil,
                            from: "load@load.test",
                            to: recipients,
                            message: message
                        )
                        first = false
                        let latency = (now() - due) * 1000
                        if replies.count == recipients.count && replies.allSatisfy({ $0.code / 100 == 2 }) {
                            latencies.withLock { $0.append(latency) }
                        } else {
                            failures.add(1, ordering: .relaxed)
                        }
                    } catch {
                        failures.add(1, ordering: .relaxed)
                        connection = nil
                    }
                }
                if let connection { try? connection.send("QUIT\r\n") }
            }
        }
        group.wait()
        let elapsed = now() - start
        let sorted = latencies.withLock { $0.sorted() }
        func percentile(_ p: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        print(
            String(
                format: "rate=%.0f achieved=%.1f/s p50_ms=%.2f p99_ms=%.2f max_ms=%.2f ok=%d failed=%d",
                rate,
                Double(sorted.count) / elapsed,
                percentile(0.5),
                percentile(0.99),
                sorted.last ?? 0,
                sorted.count,
                failures.load(ordering: .relaxed)
            )
        )
    }

    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// A plain message of about `size` bytes, CRLF lines, no leading dots.
    static func makeMessage(size: Int) -> [UInt8] {
        var text =
            "From: load@load.test\r\nTo: rcpt0@example.test\r\nSubject: paced load\r\nMessage-ID: <paced@load.test>\r\n\r\n"
        let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
        while text.utf8.count + line.utf8.count <= size { text += line }
        return Array(text.utf8)
    }
}
