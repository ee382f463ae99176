import Foundation

/// Escaping rules of chat targets, and the lengths text has after escaping (limits apply to what
/// the target receives). Mail text is untrusted markup: it must not ping `@everyone`, must not
/// form `<!channel>` or disguised links like `<https://evil|bank>` or `[bank](https://evil)`.
package enum ChatMarkup {
    /// Slack mrkdwn: exactly `&`, `<`, `>` become entities; nothing else is encoded.
    package static func slack(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text { out += slackEscape(character) ?? String(character) }
        return out
    }

    private static func slackEscape(_ character: Character) -> String? {
        switch character {
        case "&": return "&amp;"
        case "<": return "&lt;"
        case ">": return "&gt;"
        default: return nil
        }
    }

    /// Characters Slack counts for `character` once escaped.
    package static func slackLength(_ character: Character) -> Int { slackEscape(character)?.count ?? 1 }

    /// Markdown (CommonMark-like: Discord, Mattermost, Rocket.Chat, Zulip): a backslash before
    /// every character that could start formatting, a link or a mention, and mentions
    /// (`@everyone`, `@channel`, `@all`, `@here`, `@user`) broken with a zero-width space after
    /// the `@` so that they show as text and notify nobody.
    package static func markdown(_ text: String, dialect: MarkdownDialect = .commonMark) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        var previous: Character?
        for character in text {
            out += markdownEscape(character, after: previous, dialect: dialect) ?? String(character)
            previous = character
        }
        return out
    }

    /// Which characters a target's markdown lets a backslash escape.
    package enum MarkdownDialect: Sendable {
        /// CommonMark and its relatives (Discord, Mattermost, Rocket.Chat, GitHub, GitLab): any ASCII punctuation.
        case commonMark
        /// Zulip (Python-Markdown): only its own set; `<` is escaped by Zulip itself, `\<` would show the backslash.
        case zulip

        var specials: Set<Character> {
            switch self {
            case .commonMark: return ["\\", "`", "*", "_", "~", "[", "]", "<", ">", "|", "#"]
            case .zulip: return ["\\", "`", "*", "_", "[", "]", ">", "#"]
            }
        }
    }

    static let zeroWidthSpace: Character = "\u{200B}"

    private static func markdownEscape(
        _ character: Character,
        after previous: Character?,
        dialect: MarkdownDialect
    ) -> String? {
        if dialect.specials.contains(character) { return "\\" + String(character) }
        if character == "@",
            !(previous.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-" || $0 == "+" } ?? false)
        {
            return "@" + String(zeroWidthSpace)
        }
        return nil
    }

    /// The length of `text` after ``markdown(_:)``, counted by `unit` per escaped grapheme.
    package static func markdownMeasure(
        _ unit: TextLimit.Unit,
        dialect: MarkdownDialect = .commonMark
    ) -> (Character) -> Int {
        let limit = TextLimit(0, unit)
        let specials = dialect.specials
        return { character in
            let base = limit.length(of: String(character))
            if specials.contains(character) { return base + 1 }
            // counted as if always broken
            if character == "@" { return base + limit.length(of: String(zeroWidthSpace)) }
            return base
        }
    }

    /// Plain text for targets that render a little markdown we cannot escape (Teams TextBlocks):
    /// link syntax `](` is broken with a zero-width space; mentions are inert there anyway.
    package static func neutraliseLinks(_ text: String) -> String {
        text.replacingOccurrences(of: "](", with: "]\u{200B}(")
    }

    /// HTML text content: `&`, `<`, `>`, `"` and `'` become entities.
    package static func html(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// Matrix: `@room` notifies the whole room; broken with a zero-width space.
    package static func matrixPlain(_ text: String) -> String {
        text.replacingOccurrences(of: "@room", with: "@\u{200B}room")
    }

    /// UTF-8 bytes `character` takes inside a JSON string literal.
    package static func jsonLength(_ character: Character) -> Int {
        var total = 0
        for scalar in character.unicodeScalars {
            switch scalar {
            case "\"", "\\", "\n", "\r", "\t", "\u{08}", "\u{0C}": total += 2
            case _ where scalar.value < 0x20: total += 6
            default: total += String(scalar).utf8.count
            }
        }
        return total
    }
}
