import MessageData

/// A small, fast JSON writer with keys in the order written (for a readable, documented payload):
/// strings are escaped per RFC 8259 (control characters as `\u00XX`, `/` unescaped).
package struct JSONWriter {
    /// What was written since the last streamed part (all of it when nothing is streamed).
    package private(set) var bytes: [UInt8] = []
    /// Parts before `bytes`: written bytes and message bodies encoded while the request is sent.
    private var parts: [RequestBody.Part] = []
    private var needsComma: [Bool] = [false]

    /// The document as a request body: written bytes, with streamed parts where they were written.
    package var body: RequestBody {
        parts.isEmpty ? RequestBody(bytes: bytes) : RequestBody(parts + [.bytes(bytes)])
    }

    package init(capacity: Int = 4096) { bytes.reserveCapacity(capacity) }

    private mutating func separator() {
        if needsComma[needsComma.count - 1] { bytes.append(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
    }

    package mutating func key(_ name: String) {
        separator()
        appendString(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma[needsComma.count - 1] = false
    }

    package mutating func beginObject() {
        separator()
        bytes.append(UInt8(ascii: "{"))
        needsComma.append(false)
    }
    package mutating func endObject() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "}"))
        needsComma[needsComma.count - 1] = true
    }
    package mutating func beginArray() {
        separator()
        bytes.append(UInt8(ascii: "["))
        needsComma.append(false)
    }
    package mutating func endArray() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "]"))
        needsComma[needsComma.count - 1] = true
    }

    package mutating func string(_ value: String) {
        separator()
        appendString(value)
    }
    package mutating func string(_ value: String?) { if let value { string(value) } else { null() } }

    /// `"name":["a","b",…]`: a key and an array of strings.
    package mutating func strings(_ name: String, _ values: [String]) {
        key(name)
        beginArray()
        for value in values { string(value) }
        endArray()
    }
    package mutating func null() {
        separator()
        bytes += Array("null".utf8)
    }
    package mutating func bool(_ value: Bool) {
        separator()
        bytes += Array((value ? "true" : "false").utf8)
    }
    package mutating func int(_ value: Int) {
        separator()
        bytes += Array(String(value).utf8)
    }
    /// Writes `value` base64-encoded (with padding) as a string, straight into the output.
    package mutating func base64String(_ value: [UInt8]) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        TransferDecoding.base64Encode(value, into: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Writes a message base64-encoded as a string: a file body is not read now, but encoded
    /// while the request is sent (see ``body``); bytes are encoded at once.
    package mutating func base64String(of message: MessageBody) {
        guard case .file = message else {
            if case .bytes(let bytes) = message { base64String(bytes) }
            return
        }
        separator()
        bytes.append(UInt8(ascii: "\""))
        parts.append(.bytes(bytes))
        parts.append(.base64(message))
        bytes = [UInt8(ascii: "\"")]
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// 1 for bytes that need escaping: control characters, `"` and `\`.
    private static let needsEscape: [UInt8] = (0..<256).map { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C ? 1 : 0 }

    private mutating func appendString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            Self.needsEscape.withUnsafeBufferPointer { table in
                var runStart = 0
                var index = 0
                let count = utf8.count
                while index < count {
                    let byte = utf8[index]
                    if table[Int(byte)] == 0 {
                        index += 1
                        continue
                    }
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                    switch byte {
                    case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
                    case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
                    case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
                    case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
                    case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
                    default:
                        bytes += [
                            UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                            Self.hex[Int(byte >> 4)], Self.hex[Int(byte & 15)],
                        ]
                    }
                    index += 1
                    runStart = index
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
