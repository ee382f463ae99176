import CCurl

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which webhook addresses count as private: loopback, RFC 1918, carrier-grade NAT, link-local
/// (cloud metadata at 169.254.169.254), unique-local and site-local IPv6, multicast, unspecified,
/// benchmarking and documentation ranges, and IPv4-mapped forms of them. With
/// ``WebhookRequest/denyPrivateAddresses`` the check runs on each address curl connects to (after
/// DNS, so a package name that resolves to an internal address is refused too).
package enum WebhookAddressGuard {
    /// `true` when the textual IPv4/IPv6 address is not a package one.
    package static func isPrivate(_ host: String) -> Bool {
        var text = host
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return ccurl_text_address_is_private(AF_INET, &v4) != 0 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return ccurl_text_address_is_private(AF_INET6, &v6) != 0 }
        return text.lowercased() == "localhost" || text.lowercased().hasSuffix(".localhost")
    }

    /// The host of an http(s) URL when it is an IP literal or `localhost` (names are checked at connect time).
    package static func literalHost(of url: String) -> String? {
        guard let scheme = url.range(of: "://") else { return nil }
        var rest = url[scheme.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        var host = String(rest)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            host = String(host[host.startIndex...close])
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        let bare = host.trimmingCharacters(in: ["[", "]"])
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1 || bare.lowercased() == "localhost"
        {
            return host
        }
        return nil
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
