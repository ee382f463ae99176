import Logging
import NIOConcurrencyHelpers

/// A swift-log handler that keeps every line in memory, for tests of what the daemon logs.
package final class CapturedLog: Sendable {
    /// One logged line: level, message and metadata rendered as `key=value`.
    package struct Line: Sendable, CustomStringConvertible {
        package let level: Logger.Level
        package let message: String
        package let metadata: [String: String]
        package var description: String {
            "\(level) \(message) "
                + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
    }

    private let store = NIOLockedValueBox<[Line]>([])

    package init() {}

    /// A logger whose lines (at `level` and above) are kept here.
    package func logger(label: String = "test", level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: label) { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    package var lines: [Line] { store.withLockedValue { $0 } }

    /// The lines at `level` whose rendering contains every one of `texts`.
    package func lines(_ level: Logger.Level, containing texts: String...) -> [Line] {
        lines.filter { line in line.level == level && texts.allSatisfy { line.description.contains($0) } }
    }

    fileprivate func append(_ line: Line) { store.withLockedValue { $0.append(line) } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            log.append(Line(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}
