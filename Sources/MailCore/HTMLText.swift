/// Readable plain text from HTML, for mail that has only an HTML body: block elements become line
/// breaks, list items get a bullet, entities are decoded, `script`, `style`, `head` and comments are
/// dropped, white space is collapsed as a browser would (except inside `pre`).
package enum HTMLText {
    private static let blockTags: Set<String> = [
        "p", "div", "br", "tr", "table", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
        "hr",
        "section", "article", "header", "footer", "nav", "aside", "address", "dl", "dt", "dd", "form", "fieldset",
        "figure", "figcaption", "main", "center", "tbody", "thead", "tfoot", "caption", "body", "html",
    ]
    private static let droppedTags: Set<String> = ["script", "style", "head", "title", "template", "noscript", "xml"]

    /// Works on UTF-8 bytes: all HTML syntax is ASCII, and text passes through untouched.
    package static func text(fromHTML html: String) -> String {
        let scalars = Array(html.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(scalars.count / 2)
        var index = 0
        var pendingSpace = false
        var preDepth = 0
        var newlines = 2  // at the start, as if after a paragraph: no leading blank lines
        var noTagEndBefore = 0  // a failed search proved there is no tag end before this position

        func emitNewline(_ count: Int) {
            pendingSpace = false
            while newlines < count {
                output.append(0x0A)
                newlines += 1
            }
        }
        func emit(_ scalar: UInt8) {
            if preDepth == 0 && (scalar == 0x20 || scalar == 0x09 || scalar == 0x0A || scalar == 0x0D || scalar == 0x0C)
            {
                pendingSpace = newlines == 0
                return
            }
            if pendingSpace {
                output.append(0x20)
                pendingSpace = false
            }
            output.append(scalar)
            newlines = scalar == 0x0A ? newlines + 1 : 0
        }

        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == UInt8(ascii: "<") {
                // Comment.
                if index + 3 < scalars.count, scalars[index + 1] == UInt8(ascii: "!"),
                    scalars[index + 2] == UInt8(ascii: "-"), scalars[index + 3] == UInt8(ascii: "-")
                {
                    var end = index + 4
                    while end + 2 < scalars.count
                        && !(scalars[end] == UInt8(ascii: "-") && scalars[end + 1] == UInt8(ascii: "-")
                            && scalars[end + 2] == UInt8(ascii: ">"))
                    { end += 1 }
                    index = min(scalars.count, end + 3)
                    continue
                }
                // As in HTML, "<" opens a tag only before a letter, "/", "!" or "?"; otherwise it is text.
                let next = index + 1 < scalars.count ? scalars[index + 1] : 0x20
                let opensTag =
                    isLetter(next) || next == UInt8(ascii: "/") || next == UInt8(ascii: "!")
                    || next == UInt8(ascii: "?")
                guard opensTag, index + 1 >= noTagEndBefore, let close = findTagEnd(scalars, from: index + 1) else {
                    // The search ran to its limit (it stops at once only for "<<"): remember that.
                    if opensTag, index + 1 >= noTagEndBefore {
                        noTagEndBefore = min(scalars.count, index + 1 + 8192)
                    }
                    emit(scalar)
                    index += 1
                    continue
                }
                let (name, isEnd) = tagName(scalars, from: index + 1, to: close)
                index = close + 1
                if name.isEmpty { continue }
                if droppedTags.contains(name) && !isEnd {
                    index = skipElement(scalars, name: name, from: index)
                    continue
                }
                if name == "pre" { preDepth = max(0, preDepth + (isEnd ? -1 : 1)) }
                if name == "br" {
                    pendingSpace = false
                    if newlines < 2 {
                        output.append(0x0A)
                        newlines += 1
                    }
                } else if name == "li" && !isEnd {
                    emitNewline(1)
                    output.append(contentsOf: [UInt8(ascii: "-"), 0x20])
                    newlines = 0
                } else if name == "td" || name == "th" {
                    if !isEnd { pendingSpace = newlines == 0 }
                } else if ["p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "pre", "hr"].contains(name) {
                    emitNewline(2)
                } else if blockTags.contains(name) {
                    emitNewline(1)
                }
                continue
            }
            if scalar == UInt8(ascii: "&"), let (decoded, length) = entity(scalars, at: index) {
                if decoded == "\u{A0}" {
                    emit(0x20)
                } else {
                    for byte in decoded.utf8 { emit(byte) }
                }
                index += length
                continue
            }
            emit(scalar)
            index += 1
        }
        while output.last == 0x0A || output.last == 0x20 { output.removeLast() }
        return String(decoding: output, as: UTF8.self)
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
    }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// The `>` closing a tag that starts at `start`, within a bounded distance (so a page full of
    /// stray `<` stays linear); `nil` means the `<` is text.
    private static func findTagEnd(_ scalars: [UInt8], from start: Int) -> Int? {
        var quote: UInt8? = nil
        var index = start
        let limit = min(scalars.count, start + 8192)
        while index < limit {
            let scalar = scalars[index]
            if let open = quote {
                if scalar == open { quote = nil }
            } else if scalar == UInt8(ascii: "\"") || scalar == UInt8(ascii: "'") {
                quote = scalar
            } else if scalar == UInt8(ascii: ">") {
                return index
            } else if scalar == UInt8(ascii: "<") && index == start {
                return nil
            }
            index += 1
        }
        return nil
    }

    private static func tagName(_ scalars: [UInt8], from start: Int, to end: Int) -> (String, Bool) {
        var index = start
        var isEnd = false
        if index < end, scalars[index] == UInt8(ascii: "/") {
            isEnd = true
            index += 1
        }
        var name: [UInt8] = []
        while index < end, name.count < 32 {
            let scalar = scalars[index]
            guard isLetter(scalar) || isDigit(scalar) || scalar == UInt8(ascii: ":") else { break }
            name.append(isLetter(scalar) ? scalar | 0x20 : scalar)
            index += 1
        }
        return (String(decoding: name, as: UTF8.self), isEnd)
    }

    /// Skips to after `</name>` (ASCII case-insensitive).
    private static func skipElement(_ scalars: [UInt8], name: String, from start: Int) -> Int {
        let closing = Array("</\(name)".utf8)
        var index = start
        while index + closing.count <= scalars.count {
            if scalars[index] == UInt8(ascii: "<") {
                var matches = true
                for offset in 1..<closing.count {
                    var value = scalars[index + offset]
                    if value >= 0x41 && value <= 0x5A { value += 0x20 }
                    if value != closing[offset] {
                        matches = false
                        break
                    }
                }
                if matches, let end = findTagEnd(scalars, from: index + 1) { return end + 1 }
            }
            index += 1
        }
        return scalars.count
    }

    private static let named: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}", "copy": "©", "reg": "®",
        "trade": "™",
        "hellip": "…", "mdash": "—", "ndash": "–", "lsquo": "‘", "rsquo": "’", "ldquo": "“", "rdquo": "”", "sbquo": "‚",
        "bdquo": "„", "laquo": "«", "raquo": "»", "bull": "•", "middot": "·", "euro": "€", "pound": "£", "yen": "¥",
        "cent": "¢",
        "sect": "§", "para": "¶", "deg": "°", "plusmn": "±", "times": "×", "divide": "÷", "frac12": "½", "frac14": "¼",
        "frac34": "¾", "iexcl": "¡", "iquest": "¿", "shy": "\u{AD}", "zwnj": "\u{200C}", "zwj": "\u{200D}",
        "thinsp": "\u{2009}",
        "ensp": "\u{2002}", "emsp": "\u{2003}", "auml": "ä", "ouml": "ö", "uuml": "ü", "Auml": "Ä", "Ouml": "Ö",
        "Uuml": "Ü",
        "szlig": "ß", "eacute": "é", "egrave": "è", "ecirc": "ê", "aacute": "á", "agrave": "à", "acirc": "â",
        "ccedil": "ç",
        "ntilde": "ñ", "oacute": "ó", "ograve": "ò", "ocirc": "ô", "uacute": "ú", "ugrave": "ù", "iacute": "í",
        "aring": "å",
        "oslash": "ø", "aelig": "æ", "Eacute": "É", "rarr": "→", "larr": "←", "check": "✓", "hearts": "♥",
    ]

    /// Decodes `&name;`, `&#NNN;`, `&#xHH;` at `start`; returns the text and the length consumed.
    private static func entity(_ scalars: [UInt8], at start: Int) -> (String, Int)? {
        var index = start + 1
        var body: [UInt8] = []
        while index < scalars.count, index - start <= 32, scalars[index] != UInt8(ascii: ";") {
            let scalar = scalars[index]
            guard isLetter(scalar) || isDigit(scalar) || scalar == UInt8(ascii: "#") else { return nil }
            body.append(scalar)
            index += 1
        }
        guard index < scalars.count, scalars[index] == UInt8(ascii: ";"), !body.isEmpty else { return nil }
        let length = index - start + 1
        let name = String(decoding: body, as: UTF8.self)
        if body.first == UInt8(ascii: "#") {
            let digits = name.dropFirst()
            let value =
                digits.first == "x" || digits.first == "X" ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
            guard let value, let scalar = Unicode.Scalar(value), value != 0 else { return ("\u{FFFD}", length) }
            return (String(scalar), length)
        }
        guard let text = named[name] ?? named[name.lowercased()] else { return nil }
        return (text, length)
    }
}
