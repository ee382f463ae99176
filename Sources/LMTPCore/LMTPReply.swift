/// One reply the server sends: a three-digit code, an optional enhanced status code (RFC 3463),
/// and one or more lines of text. Multi-line replies are rendered with `code-` continuation lines.
public struct LMTPReply: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit reply code, e.g. `250`.
    public var code: Int
    /// The enhanced status code, e.g. `2.1.5`; `nil` for replies that carry none (220, 354, the LHLO reply).
    public var enhancedCode: String?
    /// The text lines; at least one (possibly empty).
    public var lines: [String]

    public init(_ code: Int, _ enhancedCode: String?, _ text: String) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.lines = [text]
    }

    public init(code: Int, enhancedCode: String? = nil, lines: [String]) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.lines = lines.isEmpty ? [""] : lines
    }

    /// `true` for 2xx replies (RFC 2033: a "successful" RCPT is one answered 2xx).
    public var isPositive: Bool { (200..<300).contains(code) }

    /// The reply as it goes on the wire, every line terminated by CRLF.
    public var wireFormat: String {
        var out = ""
        for (index, line) in lines.enumerated() {
            var prefix = "\(code)\(index == lines.count - 1 ? " " : "-")"
            if let enhancedCode { prefix += enhancedCode + (line.isEmpty ? "" : " ") }
            out += prefix
            // A reply never carries a line break or control of its own, and no line exceeds 512 bytes.
            out += Self.quoting(line, maxBytes: max(Self.maxLineLength - prefix.utf8.count - 2, 3))
            out += "\r\n"
        }
        return out
    }

    /// Longest reply line on the wire, in bytes including the code and CRLF (RFC 5321 §4.5.3.1.5).
    /// Clients may read replies into small buffers (Exim's LMTP client: 256 bytes), so a longer
    /// text is cut on the wire (at a character boundary, ending in `...`).
    public static let maxLineLength = 512

    /// `text` made safe to quote in a reply: controls become `?`, and at most `maxBytes` bytes of
    /// UTF-8 are kept (cut at a character boundary, ending in `...`). For every reply that
    /// repeats what a client sent (parameters, attribute names, addresses).
    public static func quoting(_ text: some StringProtocol, maxBytes: Int = 64) -> String {
        let printable = String(String.UnicodeScalarView(text.unicodeScalars.map { isControl($0) ? "?" : $0 }))
        return cut(printable, toBytes: maxBytes)
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
    }

    /// `text` cut to at most `bytes` bytes of UTF-8 at a scalar boundary, marked with `...`.
    private static func cut(_ text: String, toBytes bytes: Int) -> String {
        guard text.utf8.count > bytes else { return text }
        var kept = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            let size = UTF8.width(scalar)
            if count + size > bytes - 3 { break }
            kept.append(scalar)
            count += size
        }
        return String(kept) + "..."
    }

    /// The wire format as bytes.
    public var wireBytes: [UInt8] { Array(wireFormat.utf8) }

    public var description: String {
        String(wireFormat.dropLast(2)).replacingOccurrences(of: "\r\n", with: " | ")
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        self.split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
