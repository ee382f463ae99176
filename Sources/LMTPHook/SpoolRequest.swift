import Foundation

/// One `lmtphook spool …` command, as the CLI sends it to the daemon's control socket (one JSON
/// line) or runs it itself when no daemon runs on the spool.
package struct SpoolRequest: Codable, Sendable, Equatable {
    package enum Command: String, Codable, Sendable {
        case list, show, stats, replay, drop
    }

    package var command: Command
    package var ids: [String] = []
    /// Every entry matching the filters (replay).
    package var all = false
    /// Dead letters instead of queued entries (list, replay).
    package var dead = false
    /// Only entries whose endpoint name is this, or whose (masked) URL contains it.
    package var endpoint: String?
    /// Only entries received within this many milliseconds.
    package var sinceMilliseconds: Int64?
    /// Only entries received at least this many milliseconds ago.
    package var untilMilliseconds: Int64?
    package var json = false
    /// The raw message (show).
    package var raw = false
    package var dryRun = false
    /// Deliveries per second at most (replay).
    package var rate: Double?
    /// Deliver here instead of each entry's endpoint (replay).
    package var toURL: String?

    package init(command: Command) { self.command = command }

    /// Whether the filters select this entry, received at `receivedAt`, for endpoint `name`
    /// (masked URL `url`), at `now` (milliseconds since 1970).
    package func matches(name: String?, url: String, receivedAt: Int64, now: Int64) -> Bool {
        if let endpoint, name != endpoint, !url.contains(endpoint) { return false }
        let age = now - receivedAt
        if let sinceMilliseconds, age > sinceMilliseconds { return false }
        if let untilMilliseconds, age < untilMilliseconds { return false }
        return true
    }
}

/// One frame of a command's answer on the control socket (one JSON line each): a line for
/// stdout or stderr, raw bytes for stdout, progress, and finally the exit status.
package enum SpoolAnswer: Codable, Sendable, Equatable {
    case out(String)
    case err(String)
    case raw([UInt8])
    case progress(done: Int, total: Int)
    case exit(Int32)

    private enum CodingKeys: String, CodingKey { case out, err, raw, progress, exit }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try container.decodeIfPresent(String.self, forKey: .out) {
            self = .out(text)
        } else if let text = try container.decodeIfPresent(String.self, forKey: .err) {
            self = .err(text)
        } else if let base64 = try container.decodeIfPresent(String.self, forKey: .raw) {
            self = .raw(Array(Data(base64Encoded: base64) ?? Data()))
        } else if let pair = try container.decodeIfPresent([Int].self, forKey: .progress), pair.count == 2 {
            self = .progress(done: pair[0], total: pair[1])
        } else {
            self = .exit(try container.decode(Int32.self, forKey: .exit))
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .out(let text): try container.encode(text, forKey: .out)
        case .err(let text): try container.encode(text, forKey: .err)
        case .raw(let bytes): try container.encode(Data(bytes).base64EncodedString(), forKey: .raw)
        case .progress(let done, let total): try container.encode([done, total], forKey: .progress)
        case .exit(let status): try container.encode(status, forKey: .exit)
        }
    }
}
