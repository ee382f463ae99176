/// Message ids from `Message-ID`, `In-Reply-To` and `References` (RFC 5322 §3.6.4): every `<…>`
/// token in order, comments ignored; a bare token containing `@` when there are no brackets.
package enum MessageIDList {
    package static func parse(_ text: String) -> [String] {
        var ids: [String] = []
        var depth = 0
        var current: String? = nil
        var bare = ""
        var sawBracket = false
        for character in text {
            if depth > 0 {
                if character == "(" { depth += 1 } else if character == ")" { depth -= 1 }
                continue
            }
            if var id = current {
                if character == ">" {
                    id.append(">")
                    let cleaned = String(id.filter { !$0.isWhitespace })
                    if cleaned.count > 2 { ids.append(cleaned) }
                    current = nil
                } else if character == "<" {
                    current = "<"  // an unterminated id: start again
                } else {
                    id.append(character)
                    current = id
                }
                continue
            }
            switch character {
            case "(": depth = 1
            case "<":
                current = "<"
                sawBracket = true
            default: bare.append(character)
            }
        }
        if !sawBracket {
            for token in bare.split(whereSeparator: { $0.isWhitespace || $0 == "," }) where token.contains("@") {
                ids.append("<\(token)>")
            }
        }
        return ids
    }
}
