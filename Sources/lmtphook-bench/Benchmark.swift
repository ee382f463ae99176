import MailCore

#if canImport(Glibc)
import Glibc
#endif

/// `lmtphook-bench parse [--repeat N] [--out DIR] FILE|DIR…`: parses every message and renders its
/// payload v1 JSON, reporting MB/s and messages/s of one core. With `--out`, writes each JSON next
/// to its name there (for the corpus sweep and schema validation).
@main
struct Benchmark {
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "load" {
            PacedLoad.main(Array(arguments.dropFirst()))
            return
        }
        guard arguments.first == "parse" else {
            print("usage: lmtphook-bench parse [--repeat N] [--out DIR] FILE|DIR...")
            print(
                "       lmtphook-bench load (--socket PATH | --tcp HOST:PORT) --rate N --count N [--conns N] [--size BYTES] [--rcpts N]"
            )
            exit(64)
        }
        arguments.removeFirst()
        var repeats = 1
        var outputDirectory: String? = nil
        var paths: [String] = []
        while let argument = arguments.first {
            arguments.removeFirst()
            switch argument {
            case "--repeat": repeats = Int(arguments.removeFirst()) ?? 1
            case "--out": outputDirectory = arguments.removeFirst()
            default: paths.append(argument)
            }
        }
        var files: [(String, [UInt8])] = []
        for path in paths { collect(path, into: &files) }
        guard !files.isEmpty else {
            print("no messages found")
            exit(1)
        }
        let totalBytes = files.reduce(0) { $0 + $1.1.count }
        let envelope = MailEnvelope(mailFrom: "sender@example.org", rcptTo: ["rcpt@example.test"], lhlo: "bench")
        var slowest: (String, Double) = ("", 0)
        var outputBytes = 0
        let clock = ContinuousClock()
        let started = clock.now
        for round in 0..<repeats {
            for (path, raw) in files {
                let one = clock.now
                let id = MessagePayload.id(raw: raw, recipients: envelope.rcptTo, endpoint: "bench")
                let rendered = MessagePayload.render(
                    id: id,
                    receivedAt: UnixTime(milliseconds: 0),
                    envelope: envelope,
                    raw: raw
                )
                outputBytes += rendered.json.count
                let seconds = (clock.now - one).seconds
                if seconds > slowest.1 { slowest = (path, seconds) }
                if round == 0, let outputDirectory {
                    let name = path.split(separator: "/").suffix(2).joined(separator: "__") + ".json"
                    let fd = open("\(outputDirectory)/\(name)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                    if fd >= 0 {
                        _ = rendered.json.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                        close(fd)
                    }
                }
            }
        }
        let elapsed = (clock.now - started).seconds
        let megabytes = Double(totalBytes * repeats) / 1_048_576
        print(
            "messages: \(files.count) × \(repeats), input \(format2(megabytes)) MiB, JSON out \(format2(Double(outputBytes) / 1_048_576)) MiB"
        )
        print(
            "parse+render: \(format2(elapsed)) s, \(format2(megabytes / elapsed)) MiB/s, \(format2(Double(files.count * repeats) / elapsed)) messages/s (one core)"
        )
        print("slowest message: \(slowest.0) \(format2(slowest.1 * 1000)) ms")
    }

    static func collect(_ path: String, into files: inout [(String, [UInt8])]) {
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            guard let directory = opendir(path) else { return }
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(directory)
            for name in names.sorted() { collect("\(path)/\(name)", into: &files) }
        } else if path.hasSuffix(".eml"), let bytes = readAll(path) {
            files.append((path, bytes))
        }
    }

    static func readAll(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        return bytes
    }

    static func format2(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return String(scaled)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
