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
            let separator = index == lines.count - 1 ? " " : "-"
            out += "\(code)\(separator)"
            if let enhancedCode { out += enhancedCode + (line.isEmpty ? "" : " ") }
            out += line
            out += "\r\n"
        }
        return out
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
