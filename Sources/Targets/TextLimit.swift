/// A length limit in the unit a target counts in, and grapheme-safe truncation to it.
///
/// Targets count differently: Slack and Discord in characters, Mattermost in runes (Unicode
/// scalars), Zulip, ntfy and Teams in UTF-8 bytes. Truncation never splits a grapheme cluster (an
/// emoji with its modifiers, a letter with its combining marks) and ends with a visible marker
/// whose own length counts against the limit.
package struct TextLimit: Sendable, Hashable {
    /// What a limit counts.
    package enum Unit: String, Sendable, Hashable {
        /// Extended grapheme clusters (what a user sees as one character).
        case characters
        /// Unicode scalars ("runes" in Go).
        case scalars
        /// UTF-16 code units (JavaScript's `length`).
        case utf16
        /// UTF-8 bytes.
        case utf8Bytes
    }

    package var limit: Int
    package var unit: Unit

    package init(_ limit: Int, _ unit: Unit) {
        self.limit = limit
        self.unit = unit
    }

    /// The marker appended to truncated text.
    package static let marker = "… [truncated]"

    /// The length of `text` in this limit's unit.
    package func length(of text: some StringProtocol) -> Int {
        switch unit {
        case .characters: return text.count
        case .scalars: return text.unicodeScalars.count
        case .utf16: return text.utf16.count
        case .utf8Bytes: return text.utf8.count
        }
    }

    private func length(of character: Character) -> Int {
        switch unit {
        case .characters: return 1
        case .scalars: return character.unicodeScalars.count
        case .utf16: return character.utf16.count
        case .utf8Bytes: return character.utf8.count
        }
    }

    /// `text` itself when it fits, else its longest prefix of whole graphemes that fits together
    /// with `marker` (trailing whitespace dropped before the marker).
    package func truncate(_ text: String, marker: String = TextLimit.marker) -> String {
        Self.truncate(text, toFit: limit, marker: marker, measure: length(of:))
    }

    /// Truncation where each grapheme costs what `measure` says: the length it will have after
    /// escaping, in the target's unit. Whole graphemes only; `marker` is measured the same way.
    package static func truncate(
        _ text: String,
        toFit limit: Int,
        marker: String = TextLimit.marker,
        measure: (Character) -> Int
    ) -> String {
        var total = 0
        for character in text {
            total += measure(character)
            if total > limit { break }
        }
        if total <= limit { return text }
        let markerLength = marker.reduce(0) { $0 + measure($1) }
        let budget = limit - markerLength
        guard budget > 0 else { return prefix(of: text, budget: limit, measure: measure) }
        var kept = prefix(of: text, budget: budget, measure: measure)
        while let last = kept.last, last.isWhitespace { kept.removeLast() }
        return kept + marker
    }

    /// Splits `text` into pieces that each fit `limit` (measured like ``truncate(_:toFit:marker:measure:)``),
    /// preferring to break after a newline, else after a space, else between graphemes.
    package static func split(_ text: String, pieceLimit limit: Int, measure: (Character) -> Int) -> [String] {
        var pieces: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            var used = 0
            var end = rest.startIndex
            var lastNewline: String.Index?
            var lastSpace: String.Index?
            for index in rest.indices {
                let size = measure(rest[index])
                if used + size > limit { break }
                used += size
                end = rest.index(after: index)
                if rest[index] == "\n" { lastNewline = end } else if rest[index] == " " { lastSpace = end }
            }
            if end == rest.startIndex { break }  // a single grapheme larger than the limit
            if end != rest.endIndex, let cut = lastNewline ?? lastSpace { end = cut }
            pieces.append(String(rest[..<end]))
            rest = rest[end...]
        }
        return pieces
    }

    private static func prefix(of text: String, budget: Int, measure: (Character) -> Int) -> String {
        var used = 0
        var end = text.startIndex
        for index in text.indices {
            let size = measure(text[index])
            if used + size > budget { break }
            used += size
            end = text.index(after: index)
        }
        return String(text[..<end])
    }
}
