/// Readable plain text from HTML, for mail that has only an HTML body: block elements become line
/// breaks, list items get a bullet, entities are decoded, `script`, `style`, `head` and comments are
/// dropped, white space is collapsed as a browser would (except inside `pre`).
public enum HTMLText {
    private static let blockTags: Set<String> = [
        "p", "div", "br", "tr", "table", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr",
        "section", "article", "header", "footer", "nav", "aside", "address", "dl", "dt", "dd", "form", "fieldset",
        "figure", "figcaption", "main", "center", "tbody", "thead", "tfoot", "caption", "body", "html",
    ]
    private static let droppedTags: Set<String> = ["script", "style", "head", "title", "template", "noscript", "xml"]

    public static func text(fromHTML html: String) -> String {
        let scalars = Array(html.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        var pendingSpace = false
        var preDepth = 0
        var newlines = 2  // at the start, as if after a paragraph: no leading blank lines
        var noTagEndBefore = 0  // a failed search proved there is no tag end before this position

        func emitNewline(_ count: Int) {
            pendingSpace = false
            while newlines < count {
                output.append("\n")
                newlines += 1
            }
        }
        func emit(_ scalar: Unicode.Scalar) {
            if preDepth == 0 && (scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar == "\u{0C}") {
                pendingSpace = newlines == 0
                return
            }
            if pendingSpace {
                output.append(" ")
                pendingSpace = false
            }
            output.append(scalar)
            newlines = scalar == "\n" ? newlines + 1 : 0
        }

        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "<" {
                // Comment.
                if index + 3 < scalars.count, scalars[index + 1] == "!", scalars[index + 2] == "-", scalars[index + 3] == "-" {
                    var end = index + 4
                    while end + 2 < scalars.count && !(scalars[end] == "-" && scalars[end + 1] == "-" && scalars[end + 2] == ">") { end += 1 }
                    index = min(scalars.count, end + 3)
                    continue
                }
                // As in HTML, "<" opens a tag only before a letter, "/", "!" or "?"; otherwise it is text.
                let next = index + 1 < scalars.count ? scalars[index + 1] : " "
                let opensTag = next.properties.isAlphabetic || next == "/" || next == "!" || next == "?"
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
                        output.append("\n")
                        newlines += 1
                    }
                } else if name == "li" && !isEnd {
                    emitNewline(1)
                    output.append(contentsOf: "- ".unicodeScalars)
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
            if scalar == "&", let (decoded, length) = entity(scalars, at: index) {
                for piece in decoded.unicodeScalars { emit(piece == "\u{A0}" ? " " : piece) }
                index += length
                continue
            }
            emit(scalar)
            index += 1
        }
        var text = String(output)
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return text
    }

    /// The `>` closing a tag that starts at `start`, within a bounded distance (so a page full of
    /// stray `<` stays linear); `nil` means the `<` is text.
    private static func findTagEnd(_ scalars: [Unicode.Scalar], from start: Int) -> Int? {
        var quote: Unicode.Scalar? = nil
        var index = start
        let limit = min(scalars.count, start + 8192)
        while index < limit {
            let scalar = scalars[index]
            if let open = quote {
                if scalar == open { quote = nil }
            } else if scalar == "\"" || scalar == "'" {
                quote = scalar
            } else if scalar == ">" {
                return index
            } else if scalar == "<" && index == start {
                return nil
            }
            index += 1
        }
        return nil
    }

    private static func tagName(_ scalars: [Unicode.Scalar], from start: Int, to end: Int) -> (String, Bool) {
        var index = start
        var isEnd = false
        if index < end, scalars[index] == "/" {
            isEnd = true
            index += 1
        }
        var name = ""
        while index < end {
            let scalar = scalars[index]
            guard scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == ":" else { break }
            name.unicodeScalars.append(scalar)
            index += 1
        }
        return (name.lowercased(), isEnd)
    }

    /// Skips to after `</name>`.
    private static func skipElement(_ scalars: [Unicode.Scalar], name: String, from start: Int) -> Int {
        let closing = Array("</\(name)".unicodeScalars)
        var index = start
        while index + closing.count <= scalars.count {
            if scalars[index] == "<" {
                var matches = true
                for offset in 0..<closing.count where scalars[index + offset].properties.lowercaseMapping != String(closing[offset]) {
                    matches = false
                    break
                }
                if matches, let end = findTagEnd(scalars, from: index + 1) { return end + 1 }
            }
            index += 1
        }
        return scalars.count
    }

    private static let named: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}", "copy": "©", "reg": "®", "trade": "™",
        "hellip": "…", "mdash": "—", "ndash": "–", "lsquo": "‘", "rsquo": "’", "ldquo": "“", "rdquo": "”", "sbquo": "‚",
        "bdquo": "„", "laquo": "«", "raquo": "»", "bull": "•", "middot": "·", "euro": "€", "pound": "£", "yen": "¥", "cent": "¢",
        "sect": "§", "para": "¶", "deg": "°", "plusmn": "±", "times": "×", "divide": "÷", "frac12": "½", "frac14": "¼",
        "frac34": "¾", "iexcl": "¡", "iquest": "¿", "shy": "\u{AD}", "zwnj": "\u{200C}", "zwj": "\u{200D}", "thinsp": "\u{2009}",
        "ensp": "\u{2002}", "emsp": "\u{2003}", "auml": "ä", "ouml": "ö", "uuml": "ü", "Auml": "Ä", "Ouml": "Ö", "Uuml": "Ü",
        "szlig": "ß", "eacute": "é", "egrave": "è", "ecirc": "ê", "aacute": "á", "agrave": "à", "acirc": "â", "ccedil": "ç",
        "ntilde": "ñ", "oacute": "ó", "ograve": "ò", "ocirc": "ô", "uacute": "ú", "ugrave": "ù", "iacute": "í", "aring": "å",
        "oslash": "ø", "aelig": "æ", "Eacute": "É", "rarr": "→", "larr": "←", "check": "✓", "hearts": "♥",
    ]

    /// Decodes `&name;`, `&#NNN;`, `&#xHH;` at `start`; returns the text and the length consumed.
    private static func entity(_ scalars: [Unicode.Scalar], at start: Int) -> (String, Int)? {
        var index = start + 1
        var body = ""
        while index < scalars.count, index - start <= 32, scalars[index] != ";" {
            let scalar = scalars[index]
            guard scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "#" else { return nil }
            body.unicodeScalars.append(scalar)
            index += 1
        }
        guard index < scalars.count, scalars[index] == ";", !body.isEmpty else { return nil }
        let length = index - start + 1
        if body.hasPrefix("#") {
            let digits = body.dropFirst()
            let value = digits.first == "x" || digits.first == "X" ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
            guard let value, let scalar = Unicode.Scalar(value), value != 0 else { return ("\u{FFFD}", length) }
            return (String(scalar), length)
        }
        guard let text = named[body] ?? named[body.lowercased()] else { return nil }
        return (text, length)
    }
}
