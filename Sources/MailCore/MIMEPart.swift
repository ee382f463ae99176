import Crypto
import MessageData

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One node of a message's MIME tree: its headers, parsed content type and disposition, and where
/// its (still encoded) body lies in the message bytes. Multiparts have children; other parts are leaves.
package struct MIMEPart: Sendable {
    package var headers: HeaderBlock
    /// Lower-cased `type/subtype`; `text/plain` when absent or unparseable (RFC 2045 §5.2).
    package var contentType: MIMEHeaderValue
    package var disposition: MIMEHeaderValue?
    /// Lower-cased Content-Transfer-Encoding (`7bit` when absent).
    package var transferEncoding: String
    /// The encoded body's byte range in the whole message.
    package var body: Range<Int>
    package var children: [MIMEPart]
    /// Depth in the tree (0 for the message itself).
    package var depth: Int

    package var isMultipart: Bool { contentType.value.hasPrefix("multipart/") }
    package var mediaType: String { contentType.value }
    package var charset: String? { contentType.parameters["charset"] }

    /// The file name from Content-Disposition `filename`, else Content-Type `name`.
    package var filename: String? { disposition?.parameters["filename"] ?? contentType.parameters["name"] }
}

/// Builds the MIME tree (RFC 2045/2046) of a message without copying its bytes. Tolerant:
/// a multipart without a boundary or without any delimiter line is read as one text part, a
/// missing close delimiter ends the last part at the end of the message, and depth and part count
/// are bounded. Every irregularity is reported in `problems`.
package struct MIMEParser {
    /// Multipart nesting deeper than this is treated as opaque content.
    package static let maximumDepth = 32
    /// At most this many parts are split out of one message.
    package static let maximumParts = 1_000

    package private(set) var problems: [String] = []
    private var partCount = 0
    private let message: [UInt8]

    package init(message: [UInt8]) { self.message = message }

    /// Parses the whole message.
    package mutating func parse() -> MIMEPart {
        parsePart(0..<message.count, depth: 0, defaultType: "text/plain")
    }

    private mutating func parsePart(_ range: Range<Int>, depth: Int, defaultType: String) -> MIMEPart {
        partCount += 1
        let headers = HeaderBlock(parsing: message[range])
        if depth == 0 { problems += headers.problems } else { problems += headers.problems.map { "part: \($0)" } }
        var contentType = MIMEHeaderValue(value: defaultType)
        if let field = headers.first("Content-Type") {
            contentType = MIMEHeaderValue(parsing: field.rawText(problems: &problems), problems: &problems)
            if contentType.value == "text" { contentType.value = "text/plain" }
            let pieces = contentType.value.split(separator: "/", omittingEmptySubsequences: false)
            if pieces.count != 2 || pieces[0].isEmpty || pieces[1].isEmpty {
                problems.append("invalid Content-Type \(contentType.value.prefix(60)); read as \(defaultType)")
                contentType.value = defaultType
            } else if pieces[0] == "multipart" && pieces[1].contains("/") {
                contentType.value = "multipart/mixed"
            }
        }
        let disposition = headers.first("Content-Disposition").map {
            MIMEHeaderValue(parsing: $0.rawText(problems: &problems), problems: &problems)
        }
        var encoding = headers.first("Content-Transfer-Encoding")?.text.trimmingWhitespace().lowercased() ?? "7bit"
        if encoding.isEmpty { encoding = "7bit" }
        let body = min(headers.bodyOffset, range.upperBound)..<range.upperBound
        var part = MIMEPart(
            headers: headers,
            contentType: contentType,
            disposition: disposition,
            transferEncoding: encoding,
            body: body,
            children: [],
            depth: depth
        )
        guard part.isMultipart else { return part }
        guard depth < Self.maximumDepth else {
            problems.append("multipart nesting deeper than \(Self.maximumDepth); inner parts not split")
            part.contentType.value = "application/octet-stream"
            return part
        }
        guard let boundary = contentType.parameters["boundary"], !boundary.isEmpty else {
            problems.append("multipart without boundary; read as text/plain")
            part.contentType = MIMEHeaderValue(value: "text/plain", parameters: contentType.parameters)
            return part
        }
        let childDefault = contentType.value == "multipart/digest" ? "message/rfc822" : "text/plain"
        let ranges = splitMultipart(body, boundary: Array(boundary.utf8))
        if ranges.isEmpty {
            problems.append("no boundary \(boundary.prefix(70)) found in multipart body; read as text/plain")
            part.contentType = MIMEHeaderValue(value: "text/plain", parameters: [:])
            return part
        }
        for childRange in ranges {
            guard partCount < Self.maximumParts else {
                problems.append("more than \(Self.maximumParts) MIME parts; the rest are not split")
                break
            }
            part.children.append(parsePart(childRange, depth: depth + 1, defaultType: childDefault))
        }
        return part
    }

    /// Finds the body parts between `--boundary` delimiter lines. The line break before a
    /// delimiter belongs to the delimiter; after `--boundary--` the epilogue is ignored.
    private mutating func splitMultipart(_ body: Range<Int>, boundary: [UInt8]) -> [Range<Int>] {
        let marker: [UInt8] = [UInt8(ascii: "-"), UInt8(ascii: "-")] + boundary
        var parts: [Range<Int>] = []
        var partStart: Int? = nil
        var closed = false
        message.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            // Delimiters start a line: look at the body start and after every LF.
            var candidate = body.lowerBound
            while candidate < body.upperBound {
                let position = candidate
                // Next line start for the following round.
                if let lineFeed = memchr(base + position, 0x0A, body.upperBound - position) {
                    candidate = base.distance(to: lineFeed.assumingMemoryBound(to: UInt8.self)) + 1
                } else {
                    candidate = body.upperBound
                }
                guard position + marker.count <= body.upperBound,
                    memcmp(base + position, marker, marker.count) == 0
                else { continue }
                var after = position + marker.count
                var isClose = false
                if after + 1 < body.upperBound, buffer[after] == UInt8(ascii: "-"),
                    buffer[after + 1] == UInt8(ascii: "-")
                {
                    isClose = true
                    after += 2
                }
                // Only white space may follow on the delimiter line (a longer boundary is another boundary).
                var lineEnd = after
                while lineEnd < body.upperBound, buffer[lineEnd] == 0x20 || buffer[lineEnd] == 0x09 { lineEnd += 1 }
                if lineEnd < body.upperBound, buffer[lineEnd] != 0x0D, buffer[lineEnd] != 0x0A { continue }
                if lineEnd < body.upperBound, buffer[lineEnd] == 0x0D { lineEnd += 1 }
                if lineEnd < body.upperBound, buffer[lineEnd] == 0x0A { lineEnd += 1 }
                if let start = partStart {
                    var end = position
                    if end > start, buffer[end - 1] == 0x0A { end -= 1 }
                    if end > start, buffer[end - 1] == 0x0D { end -= 1 }
                    parts.append(start..<max(start, end))
                }
                if isClose {
                    closed = true
                    partStart = nil
                    break
                }
                partStart = lineEnd
                candidate = max(candidate, lineEnd)
            }
        }
        if let start = partStart {
            if !closed { problems.append("multipart close delimiter missing") }
            // A last delimiter followed by nothing but white space opens no real part.
            let rest = message[start..<body.upperBound]
            if !rest.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }) || parts.isEmpty {
                parts.append(start..<body.upperBound)
            }
        }
        return parts
    }

    /// A leaf part's decoded size and SHA-256 (hex), decoded a chunk at a time: a big base64
    /// attachment is never held whole.
    package func decodedDigest(of part: MIMEPart, problems: inout [String]) -> (size: Int, sha256: String) {
        switch part.transferEncoding {
        case "base64": break
        case "7bit", "8bit", "binary", "":
            var hasher = SHA256()
            message.withUnsafeBufferPointer {
                hasher.update(bufferPointer: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: $0[part.body])))
            }
            let digest = hasher.finalize()
            return (part.body.count, Self.hex(digest))
        default:
            let content = decodedBody(of: part, problems: &problems)
            return (content.count, Self.hex(SHA256.hash(data: content)))
        }
        var hasher = SHA256()
        var size = 0
        var malformed = false
        message.withUnsafeBufferPointer { buffer in
            TransferDecoding.base64(UnsafeBufferPointer(rebasing: buffer[part.body]), malformed: &malformed) {
                hasher.update(bufferPointer: UnsafeRawBufferPointer($0))
                size += $0.count
            }
        }
        if malformed { problems.append("malformed base64 in \(part.mediaType) part") }
        return (size, Self.hex(hasher.finalize()))
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        let alphabet = Array("0123456789abcdef".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(64)
        for byte in digest {
            output.append(alphabet[Int(byte >> 4)])
            output.append(alphabet[Int(byte & 15)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes a leaf part's body per its Content-Transfer-Encoding.
    package func decodedBody(of part: MIMEPart, problems: inout [String]) -> [UInt8] {
        let raw = message[part.body]
        switch part.transferEncoding {
        case "base64":
            var malformed = false
            let bytes = TransferDecoding.base64(raw, malformed: &malformed)
            if malformed { problems.append("malformed base64 in \(part.mediaType) part") }
            return bytes
        case "quoted-printable":
            return TransferDecoding.quotedPrintable(raw)
        case "7bit", "8bit", "binary", "":
            return Array(raw)
        default:
            problems.append(
                "unknown Content-Transfer-Encoding \(part.transferEncoding.prefix(40)); content passed as is"
            )
            return Array(raw)
        }
    }
}
