import ArgumentParser
import Logging

/// `--log-level` and `--log-format`, shared by every command that logs.
struct LogOptions: ParsableArguments {
    @Option(help: "Least severe level logged: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Log lines as logfmt (key=value) or json (one object per line), on stderr.")
    var logFormat: String = "logfmt"

    func validate() throws {
        guard LineLogHandler.Format(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be logfmt or json; got \(logFormat)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError(
                "--log-level must be one of trace, debug, info, notice, warning, error, critical; got \(logLevel)"
            )
        }
    }

    /// A logger writing logfmt or JSON lines to stderr.
    func makeLogger(label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let format = LineLogHandler.Format(rawValue: logFormat) ?? .logfmt
        return Logger(label: label) { label in LineLogHandler(label: label, level: level, format: format) }
    }
}
