/// What Postfix tells about the original client through `XFORWARD` (Postfix XFORWARD_README).
/// Every attribute is `nil` when not sent or sent as `[UNAVAILABLE]`.
public struct LMTPClientInfo: Sendable, Hashable {
    /// Client host name (`NAME`).
    public var name: String?
    /// Client address (`ADDR`), IPv4 or `IPV6:…`.
    public var address: String?
    /// Client port (`PORT`).
    public var port: String?
    /// Protocol the client spoke (`PROTO`: SMTP or ESMTP).
    public var proto: String?
    /// The client's HELO/EHLO name (`HELO`).
    public var helo: String?
    /// The upstream queue id (`IDENT`), the Postfix queue id of the message.
    public var ident: String?
    /// `LOCAL` or `REMOTE` (`SOURCE`).
    public var source: String?

    public init(
        name: String? = nil,
        address: String? = nil,
        port: String? = nil,
        proto: String? = nil,
        helo: String? = nil,
        ident: String? = nil,
        source: String? = nil
    ) {
        self.name = name
        self.address = address
        self.port = port
        self.proto = proto
        self.helo = helo
        self.ident = ident
        self.source = source
    }

    /// The attribute names the server advertises after `XFORWARD` in its LHLO reply.
    public static let advertisedAttributes = "NAME ADDR PORT PROTO HELO IDENT SOURCE"

    /// `true` when no attribute is set.
    public var isEmpty: Bool { self == LMTPClientInfo() }

    /// Sets one attribute by its XFORWARD name (case-insensitive); returns `false` for an unknown name.
    mutating func set(_ name: String, to value: String?) -> Bool {
        switch name.uppercased() {
        case "NAME": self.name = value
        case "ADDR": self.address = value
        case "PORT": self.port = value
        case "PROTO": self.proto = value
        case "HELO": self.helo = value
        case "IDENT": self.ident = value
        case "SOURCE": self.source = value
        default: return false
        }
        return true
    }

    /// Decodes an xtext value (RFC 3461 §4: `+XX` hex escapes); `nil` when malformed.
    static func decodeXtext(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                guard index + 2 < bytes.endIndex,
                    let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
                else { return nil }
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
