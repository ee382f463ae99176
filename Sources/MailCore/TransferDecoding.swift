import MessageData

/// Content-Transfer-Encoding decoders (RFC 2045 §6), tolerant of what real mail contains.
package enum TransferDecoding {
    private static let base64Values: [UInt8] = {
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
        let output = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: capacity + 3)
        defer { output.deallocate() }
        var used = 0
        var accumulator: UInt32 = 0
        var count = 0
        func flush() {
            switch count {
            case 2:
                output[used] = UInt8(truncatingIfNeeded: accumulator >> 4)
                used += 1
            case 3:
                output[used] = UInt8(truncatingIfNeeded: accumulator >> 10)
                output[used + 1] = UInt8(truncatingIfNeeded: accumulator >> 2)
                used += 2
            case 1:
                malformed = true
            default:
                break
            }
            accumulator = 0
            count = 0
        }
        for byte in input {
            let value = base64Values[Int(byte)]
            if value == 0xFF {
                if byte == UInt8(ascii: "=") {
                    flush()
                } else if byte != 0x0D && byte != 0x0A && byte != 0x20 && byte != 0x09 {
                    malformed = true
                }
            } else {
                accumulator = accumulator << 6 | UInt32(value)
                count += 1
                if count == 4 {
                    output[used] = UInt8(truncatingIfNeeded: accumulator >> 16)
                    output[used + 1] = UInt8(truncatingIfNeeded: accumulator >> 8)
                    output[used + 2] = UInt8(truncatingIfNeeded: accumulator)
                    used += 3
                    accumulator = 0
                    count = 0
                }
            }
            if used >= capacity {
                sink(UnsafeBufferPointer(rebasing: output[..<used]))
                used = 0
            }
        }
        flush()
        if used > 0 { sink(UnsafeBufferPointer(rebasing: output[..<used])) }
    }

    /// Appends the standard base64 encoding (with padding) of `input` to `output`.
    package static func base64Encode(_ input: [UInt8], into output: inout [UInt8]) {
        input.withUnsafeBytes { Base64.encode($0, into: &output) }
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
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
