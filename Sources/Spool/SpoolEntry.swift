/// What the spool stores about a message besides its bytes: everything needed to render and
/// deliver the webhook again (payloads are rendered from the raw message at each attempt).
public struct SpoolMetadata: Sendable, Hashable, Codable {
    /// The spool entry id: time-sortable, unique.
    public var id: String
    /// The webhook id (payload `id`, `webhook-id` header): stable across every attempt and replay.
    public var webhookID: String
    /// The endpoint URL this entry is for.
    public var endpoint: String
    /// The configured endpoint's name (absent in entries written before named endpoints).
    public var endpointName: String?
    /// The endpoint's body format (`json`, `slack`, …; absent means `json`).
    public var format: String?
    public var mailFrom: String
    public var rcptTo: [String]
    public var lhlo: String
    public var smtpUTF8: Bool
    public var body: String?
    public var client: [String: String]
    /// When the final dot was received (ms since 1970).
    public var receivedAtMilliseconds: Int64
    /// Size of the raw message.
    public var size: Int
    /// The state at enqueue time, kept in the (immutable) entry file so that queuing creates one
    /// file only; a later `.state` file overrides it.
    public var initialState: SpoolState?

    public init(
        id: String,
        webhookID: String,
        endpoint: String,
        mailFrom: String,
        rcptTo: [String],
        lhlo: String,
        smtpUTF8: Bool,
        body: String?,
        client: [String: String],
        receivedAtMilliseconds: Int64,
        size: Int,
        endpointName: String? = nil,
        format: String? = nil
    ) {
        self.endpointName = endpointName
        self.format = format
        self.id = id
        self.webhookID = webhookID
        self.endpoint = endpoint
        self.mailFrom = mailFrom
        self.rcptTo = rcptTo
        self.lhlo = lhlo
        self.smtpUTF8 = smtpUTF8
        self.body = body
        self.client = client
        self.receivedAtMilliseconds = receivedAtMilliseconds
        self.size = size
    }
}

/// The delivery state of an entry, rewritten atomically after each attempt.
public struct SpoolState: Sendable, Hashable, Codable {
    /// One delivery attempt.
    public struct Attempt: Sendable, Hashable, Codable {
        public var atMilliseconds: Int64
        /// HTTP status, 0 when there was none.
        public var status: Int
        /// Transport error or a short reason, if any.
        public var error: String?
        /// The start of the response body.
        public var snippet: String?
        /// `sync`, `retry` or `replay`.
        public var kind: String

        public init(atMilliseconds: Int64, status: Int, error: String?, snippet: String?, kind: String) {
            self.atMilliseconds = atMilliseconds
            self.status = status
            self.error = error
            self.snippet = snippet
            self.kind = kind
        }
    }

    /// The attempt history: the first attempt and the latest ones (at most ``historyLimit``).
    public private(set) var attempts: [Attempt] = []
    /// Attempts dropped from the middle of the history (so that a state file stays small and
    /// cheap to rewrite however often an entry is retried).
    public private(set) var droppedAttempts: Int?
    public var nextAttemptMilliseconds: Int64
    /// Set when the entry was dead-lettered.
    public var deadReason: String?

    /// Attempts kept in the history.
    public static let historyLimit = 20

    public init(nextAttemptMilliseconds: Int64) {
        self.nextAttemptMilliseconds = nextAttemptMilliseconds
    }

    /// How many attempts were made in all.
    public var attemptCount: Int { attempts.count + (droppedAttempts ?? 0) }

    /// Records an attempt, keeping the first and the latest ones.
    public mutating func append(_ attempt: Attempt) {
        attempts.append(attempt)
        if attempts.count > Self.historyLimit {
            attempts.remove(at: 1)
            droppedAttempts = (droppedAttempts ?? 0) + 1
        }
    }

    public var lastAttempt: Attempt? { attempts.last }
}

/// A time-sortable id: 10 characters of milliseconds and 6 of randomness, Crockford base32.
public enum SpoolID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(milliseconds: Int64, random: UInt32) -> String {
        var out = [UInt8](repeating: 0, count: 16)
        var value = UInt64(max(0, milliseconds))
        for index in stride(from: 9, through: 0, by: -1) {
            out[index] = alphabet[Int(value & 31)]
            value >>= 5
        }
        var bits = random
        for index in stride(from: 15, through: 10, by: -1) {
            out[index] = alphabet[Int(bits & 31)]
            bits >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The creation time encoded in an id (ms since 1970), or `nil` for a malformed id.
    public static func milliseconds(of id: String) -> Int64? {
        guard isValid(id) else { return nil }
        var value: Int64 = 0
        for byte in id.utf8.prefix(10) {
            guard let digit = alphabet.firstIndex(of: byte) else { return nil }
            value = value << 5 | Int64(digit)
        }
        return value
    }

    /// `true` for a string that can be an id (so a CLI argument cannot name another path).
    public static func isValid(_ text: String) -> Bool {
        text.utf8.count == 16 && text.utf8.allSatisfy { alphabet.contains($0) }
    }
}
