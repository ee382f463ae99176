import ArgumentParser
import Logging

/// `--log-level`, shared by every command that logs.
struct LogOptions: ParsableArguments {
    @Option(help: "Least severe level logged: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \(logLevel)")
        }
    }

    /// A logger writing logfmt lines to stderr.
    func makeLogger(label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        return Logger(label: label) { label in LogfmtLogHandler(label: label, level: level) }
    }
}
