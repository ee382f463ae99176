/// The part of a mail body a person wants to read in a chat message: the new text, without the
/// quoted conversation below it and without the signature.
///
/// Detected conservatively, so that nothing the sender wrote is lost by mistake:
/// - a signature starts at the standard delimiter line `-- ` (RFC 3676 §4.3);
/// - a quoted reply is a trailing block of `>` lines, with its attribution line just above it
///   (`On … wrote:`, `Le … a écrit :`, `Am … schrieb …:`), or everything after an Outlook
///   `-----Original Message-----` / `________________________________` + `From:` separator.
/// Interleaved quoting (answers between quoted lines) is kept as it is. If trimming would leave
/// nothing, the whole text is returned.
package enum ReadableText {
    /// The readable part of `text`, with line endings normalised to `\n` and at most one blank
    /// line in a row.
    package static func extract(_ text: String) -> String { split(text).reply }

    /// The readable part of `text` (as ``extract(_:)``) and the signature: the lines after the
    /// `-- ` delimiter up to the quoted conversation (without the delimiter), or `nil` when there
    /// is no delimiter or nothing after it.
    package static func split(_ text: String) -> (reply: String, signature: String?) {
        let lines = normalisedLines(text)
        let signatureStart = lines.firstIndex(of: "-- ")
        let end = quoteStart(lines, before: signatureStart ?? lines.count)
        var kept = Array(lines[..<end])
        while let last = kept.last, last.trimmed.isEmpty { kept.removeLast() }
        while let first = kept.first, first.trimmed.isEmpty { kept.removeFirst() }
        if kept.isEmpty { kept = lines }
        let reply = collapseBlankLines(kept).joined(separator: "\n").trimmingTrailingWhitespace()
        guard let signatureStart else { return (reply, nil) }
        // The signature ends where the quoted conversation below it starts.
        let after = quoteStart(lines, before: lines.count)
        var signature = Array(lines[(signatureStart + 1)..<max(signatureStart + 1, after)])
        while let last = signature.last, last.trimmed.isEmpty { signature.removeLast() }
        while let first = signature.first, first.trimmed.isEmpty { signature.removeFirst() }
        guard !signature.isEmpty else { return (reply, nil) }
        return (reply, collapseBlankLines(signature).joined(separator: "\n"))
    }

    /// Where the quoted conversation in `lines[..<end]` starts: an Outlook separator, or a
    /// trailing block of `>` lines with its attribution line; `end` when there is none.
    private static func quoteStart(_ lines: [String], before end: Int) -> Int {
        var end = end
        // Outlook-style separators: cut at the first one.
        if let separator = lines[..<end].indices.first(where: { isOutlookSeparator(lines, at: $0) }) { end = separator }
        // Trailing quoted block (blank lines may sit between quoted lines).
        var cut = end
        var index = end - 1
        var sawQuote = false
        while index >= 0 {
            let line = lines[index]
            if line.hasPrefix(">") {
                sawQuote = true
                cut = index
            } else if line.trimmed.isEmpty {
                // part of the block only when quotes follow
            } else {
                break
            }
            index -= 1
        }
        guard sawQuote else { return end }
        end = cut
        // The attribution line (possibly wrapped over two lines) just above the quote.
        var above = end - 1
        while above >= 0, lines[above].trimmed.isEmpty { above -= 1 }
        if above >= 0, isAttribution(lines[above]) {
            return above
        } else if above >= 1, isAttribution(lines[above - 1] + " " + lines[above]) {
            return above - 1
        }
        return end
    }

    package static func normalisedLines(_ text: String) -> [String] {
        var lines: [String] = []
        var current = ""
        for scalar in text.unicodeScalars {
            if scalar == "\n" {
                if current.unicodeScalars.last == "\r" { current.unicodeScalars.removeLast() }
                lines.append(current)
                current = ""
            } else {
                current.unicodeScalars.append(scalar)
            }
        }
        if current.unicodeScalars.last == "\r" { current.unicodeScalars.removeLast() }
        lines.append(current)
        return lines
    }

    private static func collapseBlankLines(_ lines: [String]) -> [String] {
        var result: [String] = []
        for line in lines {
            let blank = line.trimmed.isEmpty
            if blank, let last = result.last, last.isEmpty { continue }
            result.append(blank ? "" : line.trimmingTrailingWhitespace())
        }
        return result
    }

    private static func isAttribution(_ line: String) -> Bool {
        let text = line.trimmed
        guard text.hasSuffix(":") else { return false }
        let lower = text.lowercased()
        let starts = ["on ", "le ", "am ", "el ", "il ", "op ", "em ", "den "]
        let verbs = ["wrote", "écrit", "schrieb", "escribió", "scritto", "schreef", "escreveu", "skrev"]
        return starts.contains(where: lower.hasPrefix) && verbs.contains(where: lower.contains)
    }

    private static func isOutlookSeparator(_ lines: [String], at index: Int) -> Bool {
        let line = lines[index].trimmed
        if line.hasPrefix("-----") && line.lowercased().contains("original message") { return true }
        if line.count >= 20 && line.allSatisfy({ $0 == "_" }) {
            return index + 1 < lines.count && lines[index + 1].trimmed.lowercased().hasPrefix("from:")
        }
        return false
    }
}

extension String {
    package var trimmed: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }

    package func trimmingTrailingWhitespace() -> String {
        var text = Substring(self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
