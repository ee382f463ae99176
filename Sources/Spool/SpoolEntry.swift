/// What the spool stores about a message besides its bytes: everything needed to render and
/// deliver the webhook again (payloads are rendered from the raw message at each attempt).
package struct SpoolMetadata: Sendable, Hashable, Codable {
    /// The spool entry id: time-sortable, unique.
    package var id: String
    /// The webhook id (payload `id`, `webhook-id` header): stable across every attempt and replay.
    package var webhookID: String
    /// The endpoint URL this entry is for, as shown to people: without credentials or
    /// token-like parts (entries written before 0.2 hold the full URL).
    package var endpoint: String
    /// The configured endpoint's name (absent in entries written before named endpoints).
    package var endpointName: String?
    /// The endpoint's body format (`json`, `slack`, …; absent means `json`).
    package var format: String?
    /// What the entry needs from its endpoint to be delivered as queued (format, method, header
    /// names, signing, success rule — names and flags, never values); absent in older entries.
    package var requirements: [String: String]?
    package var mailFrom: String
    package var rcptTo: [String]
    package var lhlo: String
    package var smtpUTF8: Bool
    package var body: String?
    package var client: [String: String]
    /// When the final dot was received (ms since 1970).
    package var receivedAtMilliseconds: Int64
    /// Size of the raw message.
    package var size: Int
    /// The state at enqueue time, kept in the (immutable) entry file so that queuing creates one
    /// file only; a later `.state` file overrides it.
    package var initialState: SpoolState?

    package init(
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
package struct SpoolState: Sendable, Hashable, Codable {
    /// One delivery attempt.
    package struct Attempt: Sendable, Hashable, Codable {
        package var atMilliseconds: Int64
        /// HTTP status, 0 when there was none.
        package var status: Int
        /// Transport error or a short reason, if any.
        package var error: String?
        /// The start of the response body.
        package var snippet: String?
        /// `sync`, `retry` or `replay`.
        package var kind: String

        package init(atMilliseconds: Int64, status: Int, error: String?, snippet: String?, kind: String) {
            self.atMilliseconds = atMilliseconds
            self.status = status
            self.error = error
            self.snippet = snippet
            self.kind = kind
        }
    }

    /// The attempt history: the first attempt and the latest ones (at most ``historyLimit``).
    package private(set) var attempts: [Attempt] = []
    /// Attempts dropped from the middle of the history (so that a state file stays small and
    /// cheap to rewrite however often an entry is retried).
    package private(set) var droppedAttempts: Int?
    package var nextAttemptMilliseconds: Int64
    /// Set when the entry was dead-lettered.
    package var deadReason: String?

    /// Attempts kept in the history.
    package static let historyLimit = 20

    package init(nextAttemptMilliseconds: Int64) {
        self.nextAttemptMilliseconds = nextAttemptMilliseconds
    }

    /// How many attempts were made in all.
    package var attemptCount: Int { attempts.count + (droppedAttempts ?? 0) }

    /// Records an attempt, keeping the first and the latest ones.
    package mutating func append(_ attempt: Attempt) {
        attempts.append(attempt)
        if attempts.count > Self.historyLimit {
            attempts.remove(at: 1)
            droppedAttempts = (droppedAttempts ?? 0) + 1
        }
    }

    package var lastAttempt: Attempt? { attempts.last }
}

/// A time-sortable id: 10 characters of milliseconds and 6 of randomness, Crockford base32.
package enum SpoolID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    package static func make(milliseconds: Int64, random: UInt32) -> String {
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
    package static func milliseconds(of id: String) -> Int64? {
        guard isValid(id) else { return nil }
        var value: Int64 = 0
        for byte in id.utf8.prefix(10) {
            guard let digit = alphabet.firstIndex(of: byte) else { return nil }
            value = value << 5 | Int64(digit)
        }
        return value
    }

    /// `true` for a string that can be an id (so a CLI argument cannot name another path).
    package static func isValid(_ text: String) -> Bool {
        text.utf8.count == 16 && text.utf8.allSatisfy { alphabet.contains($0) }
    }
}
