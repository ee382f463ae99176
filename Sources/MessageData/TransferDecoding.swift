import MessageData

/// Content-Transfer-Encoding decoders (RFC 2045 §6), tolerant of what real mail contains.
package enum TransferDecoding {
    static let base64Values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8).enumerated()
        {
            table[Int(byte)] = UInt8(index)
        }
        table[Int(UInt8(ascii: "-"))] = 62  // base64url, seen in the wild
        table[Int(UInt8(ascii: "_"))] = 63
        return table
    }()

    /// Base64: characters outside the alphabet are skipped, padding may be missing or appear
    /// mid-stream (concatenated encodings). `malformed` is set when stray bits were dropped or
    /// non-alphabet characters other than white space were seen.
    package static func base64(_ input: ArraySlice<UInt8>, malformed: inout Bool) -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity(input.count / 4 * 3 + 3)
        input.withUnsafeBufferPointer { buffer in
            base64(buffer, malformed: &malformed) { output.append(contentsOf: $0) }
        }
        return output
    }

    /// Base64 as above, decoded a chunk at a time into `sink` (for hashing a big attachment
    /// without holding it).
    package static func base64(
        _ input: UnsafeBufferPointer<UInt8>,
        malformed: inout Bool,
        sink: (UnsafeBufferPointer<UInt8>) -> Void
    ) {
        let capacity = 48 * 1024
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity + 3, alignment: 16)
        defer { output.deallocate() }
        let bytes = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var decoder = Base64Decoder()
        var offset = 0
        // Input slices of this size decode to at most `capacity` bytes.
        let step = capacity / 3 * 4
        while offset < input.count {
            let end = min(input.count, offset + step)
            let used = decoder.decode(
                UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: input[offset..<end])),
                into: output
            )
            if used > 0 { sink(UnsafeBufferPointer(start: bytes, count: used)) }
            offset = end
        }
        let used = decoder.finish(into: output)
        if used > 0 { sink(UnsafeBufferPointer(start: bytes, count: used)) }
        if decoder.malformed { malformed = true }
    }

    /// Appends the standard base64 encoding (with padding) of `input` to `output`.
    package static func base64Encode(_ input: [UInt8], into output: inout [UInt8]) {
        input.withUnsafeBytes { Base64.encode($0, into: &output) }
    }

    package static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// Quoted-printable (RFC 2045 §6.7): `=XX` (either case), soft line breaks `=` (white space)
    /// (CR)LF, trailing white space on lines removed, a malformed `=` kept literally.
    package static func quotedPrintable(_ input: ArraySlice<UInt8>) -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity(input.count)
        var index = input.startIndex
        let end = input.endIndex
        var keep = 0
        while index < end {
            let byte = input[index]
            if byte == UInt8(ascii: "=") {
                // Soft line break: '=' then optional white space then LF or CRLF (or end of input).
                var look = index + 1
                while look < end && (input[look] == 0x20 || input[look] == 0x09) { look += 1 }
                if look == end {
                    index = end
                    continue
                }
                if input[look] == 0x0A {
                    index = look + 1
                    continue
                }
                if input[look] == 0x0D && (look + 1 == end || input[look + 1] == 0x0A) {
                    index = min(end, look + 2)
                    continue
                }
                if index + 2 < end, let high = hexValue(input[index + 1]), let low = hexValue(input[index + 2]) {
                    output.append(high << 4 | low)
                    index += 3
                    keep = output.count  // encoded white space is content, never trimmed
                    continue
                }
                output.append(byte)
                index += 1
            } else if byte == 0x0A {
                // Trailing white space before a line end was added in transport (RFC 2045 §6.7 rule 3).
                var trim = output.count
                while trim > keep && (output[trim - 1] == 0x20 || output[trim - 1] == 0x09 || output[trim - 1] == 0x0D)
                { trim -= 1 }
                let hadCR = output.count > keep && output[output.count - 1] == 0x0D
                output.removeSubrange(trim...)
                if hadCR { output.append(0x0D) }
                output.append(0x0A)
                keep = output.count
                index += 1
            } else {
                output.append(byte)
                index += 1
            }
        }
        return output
    }
}

/// A base64 decoder that takes its input in pieces of any size and decodes exactly as
/// ``TransferDecoding/base64(_:malformed:)`` decodes the whole: the body of an attachment can be
/// decoded from a file a chunk at a time while a request is sent, to the same bytes (and count)
/// the parser hashed.
package struct Base64Decoder {
    private var accumulator: UInt32 = 0
    private var count = 0
    /// Stray bits were dropped or characters other than the alphabet and white space were seen.
    package private(set) var malformed = false
    private static let table = TransferDecoding.base64Values

    package init() {}

    /// The most bytes one call to ``decode(_:into:)`` or ``finish(into:)`` writes for `count`
    /// input bytes.
    package static func maximumOutput(_ count: Int) -> Int { count / 4 * 3 + 3 }

    /// Decodes `input` into the start of `output` (room for ``maximumOutput(_:)``); returns how
    /// many bytes were written. Bits of an incomplete quantum are kept for the next call.
    package mutating func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int {
        precondition(output.count >= Self.maximumOutput(input.count), "base64 output buffer too small")
        guard let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
        var used = 0
        Self.table.withUnsafeBufferPointer { table in
            for byte in input {
                let value = table[Int(byte)]
                if value == 0xFF {
                    if byte == UInt8(ascii: "=") {
                        used += flush(into: out + used)
                    } else if byte != 0x0D && byte != 0x0A && byte != 0x20 && byte != 0x09 {
                        malformed = true
                    }
                } else {
                    accumulator = accumulator << 6 | UInt32(value)
                    count += 1
                    if count == 4 {
                        out[used] = UInt8(truncatingIfNeeded: accumulator >> 16)
                        out[used + 1] = UInt8(truncatingIfNeeded: accumulator >> 8)
                        out[used + 2] = UInt8(truncatingIfNeeded: accumulator)
                        used += 3
                        accumulator = 0
                        count = 0
                    }
                }
            }
        }
        return used
    }

    /// Ends the input: writes what an incomplete last quantum holds (at most 2 bytes).
    package mutating func finish(into output: UnsafeMutableRawBufferPointer) -> Int {
        precondition(output.count >= 2, "base64 output buffer too small")
        return flush(into: output.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }

    private mutating func flush(into out: UnsafeMutablePointer<UInt8>) -> Int {
        defer {
            accumulator = 0
            count = 0
        }
        switch count {
        case 2:
            out[0] = UInt8(truncatingIfNeeded: accumulator >> 4)
            return 1
        case 3:
            out[0] = UInt8(truncatingIfNeeded: accumulator >> 10)
            out[1] = UInt8(truncatingIfNeeded: accumulator >> 2)
            return 2
        case 1:
            malformed = true
            return 0
        default:
            return 0
        }
    }
}

/// A part body's Content-Transfer-Encoding, as far as decoding is concerned.
package enum TransferEncoding: Sendable, Hashable {
    /// 7bit, 8bit, binary, none, or one nobody knows (passed as is).
    case identity
    case base64
    case quotedPrintable

    /// The encoding a (lower-cased) Content-Transfer-Encoding names.
    package init(_ name: String) {
        switch name {
        case "base64": self = .base64
        case "quoted-printable": self = .quotedPrintable
        default: self = .identity
        }
    }
}
