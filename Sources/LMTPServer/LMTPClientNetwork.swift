#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 network in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`, or a single
/// address), for the TCP client allow-list. IPv4-mapped IPv6 peers (`::ffff:192.0.2.1`) match IPv4
/// networks.
public struct LMTPClientNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The network address, 4 or 16 bytes, host bits cleared.
    public let address: [UInt8]
    public let prefixLength: Int

    /// Parses `ADDRESS` or `ADDRESS/PREFIX`; `nil` when it is neither.
    public init?(_ text: String) {
        let pieces = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.parseAddress(String(pieces[0])) else { return nil }
        let maximum = bytes.count * 8
        var length = maximum
        if pieces.count == 2 {
            guard let parsed = Int(pieces[1]), (0...maximum).contains(parsed), pieces[1].allSatisfy(\.isNumber) else {
                return nil
            }
            length = parsed
        }
        self.prefixLength = length
        self.address = Self.mask(bytes, length)
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        let family = address.count == 4 ? AF_INET : AF_INET6
        _ = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        let shown = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(shown)/\(prefixLength)"
    }

    /// `true` when the address (4 or 16 bytes) lies in this network.
    public func contains(_ peer: [UInt8]) -> Bool {
        var candidate = peer
        if candidate.count == 16 && address.count == 4
            && candidate.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]
        {
            candidate = Array(candidate.suffix(4))
        }
        guard candidate.count == address.count else { return false }
        return Self.mask(candidate, prefixLength) == address
    }

    /// `true` when the textual address lies in this network.
    public func contains(_ peer: String) -> Bool {
        guard let bytes = Self.parseAddress(peer) else { return false }
        return contains(bytes)
    }

    /// The 4 or 16 bytes of a textual IPv4 or IPv6 address (brackets and a zone id tolerated).
    public static func parseAddress(_ text: String) -> [UInt8]? {
        var host = text
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if let percent = host.firstIndex(of: "%") { host = String(host[..<percent]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    private static func mask(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = max(0, min(8, length - index * 8))
            return bits == 8 ? byte : byte & ~(UInt8(0xFF) >> bits)
        }
    }
}
