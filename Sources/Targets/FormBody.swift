import MessageData

/// The fields of an HTML form, in order, encoded as `application/x-www-form-urlencoded` or
/// `multipart/form-data` (RFC 7578) — the bodies Mailgun and SendGrid send. File parts and raw
/// message bytes are request-body parts: read (and decoded) from the message file while the
/// request is sent, byte-exact, never held whole.
package struct FormBody: Sendable {
    /// One field's value.
    package enum Value: Sendable {
        /// UTF-8 text.
        case text(String)
        /// Bytes as they are (8-bit mail stays byte-exact in multipart bodies).
        case bytes(RequestBody.Part)
        /// A file part: its name, media type and content.
        case file(filename: String?, contentType: String, content: RequestBody.Part)
    }

    package private(set) var fields: [(name: String, value: Value)] = []

    package init() {}

    package mutating func add(_ name: String, _ text: String) { fields.append((name, .text(text))) }

    package mutating func add(_ name: String, _ value: Value) { fields.append((name, value)) }

    /// Whether a field holds a file or raw bytes (only multipart can carry it).
    package var needsMultipart: Bool {
        fields.contains {
            if case .text = $0.value { return false }
            return true
        }
    }

    /// `name=value&…` with every byte but unreserved ASCII percent-encoded (space as `+`), as
    /// browsers and `application/x-www-form-urlencoded` parsers expect. Text fields only.
    package func urlEncoded() -> RenderedBody {
        precondition(!needsMultipart, "a form with files or raw bytes needs multipart/form-data")
        var bytes: [UInt8] = []
        for (index, field) in fields.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: "&")) }
            Self.percentEncode(field.name, into: &bytes)
            bytes.append(UInt8(ascii: "="))
            if case .text(let text) = field.value { Self.percentEncode(text, into: &bytes) }
        }
        return RenderedBody(contentType: "application/x-www-form-urlencoded", bytes: bytes)
    }

    private static let hex = Array("0123456789ABCDEF".utf8)

    private static func percentEncode(_ text: String, into bytes: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "*"):
                bytes.append(byte)
            case UInt8(ascii: " "):
                bytes.append(UInt8(ascii: "+"))
            default:
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
    }

    /// The form as `multipart/form-data` with a boundary that occurs in no field: `boundary` if
    /// it does not, else `boundary` with a counter. Streamed parts are searched for it (a file
    /// is read and decoded for that: blocking, like the rest of rendering a file body).
    package func multipart(boundary: String) throws -> RenderedBody {
        var chosen = boundary
        var attempt = 0
        while try occurs(Array(chosen.utf8)) {
            attempt += 1
            chosen = "\(boundary)-\(attempt)"
        }
        let delimiter = Array("--\(chosen)".utf8)
        var parts: [RequestBody.Part] = []
        var pending: [UInt8] = []
        for field in fields {
            pending += delimiter + Array("\r\nContent-Disposition: form-data; name=\"".utf8)
            pending += Self.quoted(field.name) + [UInt8(ascii: "\"")]
            switch field.value {
            case .text(let text):
                pending += Array("\r\n\r\n".utf8) + Array(text.utf8)
            case .bytes(let part):
                pending += Array("\r\n\r\n".utf8)
                Self.append(part, to: &parts, pending: &pending)
            case .file(let filename, let contentType, let content):
                if let filename { pending += Self.filenameParameters(filename) }
                pending += Array("\r\nContent-Type: \(contentType)\r\n\r\n".utf8)
                Self.append(content, to: &parts, pending: &pending)
            }
            pending += Array("\r\n".utf8)
        }
        pending += delimiter + Array("--\r\n".utf8)
        parts.append(.bytes(pending))
        return RenderedBody(
            contentType: "multipart/form-data; boundary=\(chosen)",
            body: RequestBody(parts)
        )
    }

    private static func append(_ part: RequestBody.Part, to parts: inout [RequestBody.Part], pending: inout [UInt8]) {
        if case .bytes(let bytes) = part {
            pending += bytes
            return
        }
        parts.append(.bytes(pending))
        parts.append(part)
        pending = []
    }

    /// Whether `needle` occurs in the fields' names, file names or values (searched as one run
    /// of bytes: a match across two fields only costs another boundary).
    private func occurs(_ needle: [UInt8]) throws -> Bool {
        var parts: [RequestBody.Part] = []
        for field in fields {
            parts.append(.bytes(Array(field.name.utf8) + [0]))
            switch field.value {
            case .text(let text): parts.append(.bytes(Array(text.utf8)))
            case .bytes(let part): parts.append(part)
            case .file(let filename, _, let content):
                parts.append(.bytes(Array((filename ?? "").utf8) + [0]))
                parts.append(content)
            }
            parts.append(.bytes([0]))
        }
        return try RequestBody(parts).contains(needle)
    }

    /// A quoted-string parameter value as browsers write it (WHATWG): `"`, CR and LF
    /// percent-encoded, everything else as UTF-8.
    private static func quoted(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += Array("%22".utf8)
            case 0x0D: bytes += Array("%0D".utf8)
            case 0x0A: bytes += Array("%0A".utf8)
            default: bytes.append(byte)
            }
        }
        return bytes
    }

    /// `; filename="…"` (UTF-8, as browsers send it) and, for a name that is not ASCII, first
    /// `; filename*=UTF-8''…` (RFC 5987/2231): parsers that know it prefer it (Rack, Werkzeug),
    /// those that take the first `filename` parameter get it too (Python's `email`), the rest
    /// read the UTF-8 `filename`.
    static func filenameParameters(_ filename: String) -> [UInt8] {
        let plain = Array("; filename=\"".utf8) + quoted(filename) + [UInt8(ascii: "\"")]
        guard filename.utf8.contains(where: { $0 >= 0x80 }) else { return plain }
        var bytes = Array("; filename*=UTF-8''".utf8)
        for byte in filename.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "+"),
                UInt8(ascii: "^"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "#"):
                bytes.append(byte)
            default:
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return bytes + plain
    }
}
