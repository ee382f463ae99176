import Logging
import MailCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes one line per event to stderr (journald picks them up), as logfmt
/// (`ts=… level=info msg="…" key=value …`) or as a JSON object with the same keys.
/// One `write(2)` per line, so lines from concurrent connections never interleave.
struct LineLogHandler: LogHandler {
    enum Format: String, CaseIterable {
        case logfmt, json
    }

    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let label: String
    let format: Format

    init(label: String, level: Logger.Level, format: Format = .logfmt) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        var bytes = Self.line(
            format: format,
            time: UnixTime.now().rfc3339,
            level: "\(event.level)",
            message: "\(event.message)",
            metadata: merged
        )
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    /// One event as a line (without the newline); metadata keys sorted.
    static func line(format: Format, time: String, level: String, message: String, metadata: Logger.Metadata) -> [UInt8]
    {
        let keys = metadata.keys.sorted()
        switch format {
        case .logfmt:
            var line = "ts=\(time) level=\(level) msg=\(quote(message))"
            for key in keys { line += " \(key)=\(quote("\(metadata[key]!)"))" }
            return Array(line.utf8)
        case .json:
            var json = JSONWriter(capacity: 256)
            json.beginObject()
            json.key("ts")
            json.string(time)
            json.key("level")
            json.string(level)
            json.key("msg")
            json.string(message)
            for key in keys where !["ts", "level", "msg"].contains(key) {
                json.key(key)
                json.string("\(metadata[key]!)")
            }
            json.endObject()
            return json.bytes
        }
    }

    static func quote(_ value: String) -> String {
        if !value.isEmpty
            && !value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline || $0 == "\\" })
        {
            return value
        }
        var out = "\""
        for character in value {
            switch character {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default: out.append(character)
            }
        }
        return out + "\""
    }
}
