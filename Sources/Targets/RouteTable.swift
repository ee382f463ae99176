/// Which endpoints receive mail for which recipient. Routes are tried in order; the first whose
/// match accepts the recipient wins. A recipient that no route accepts is refused at RCPT time
/// (`550 5.1.1`), unless a catch-all route exists.
package struct RouteTable: Sendable {
    package var routes: [Route]
    /// Characters that start a plus-tag in a local part (Postfix's `recipient_delimiter`).
    package var delimiters: Set<Character>

    package init(routes: [Route], delimiters: Set<Character> = ["+"]) {
        self.routes = routes
        self.delimiters = delimiters
    }

    /// The route for `address` (an envelope recipient, `local@domain`), or `nil` when none matches.
    package func resolve(_ address: String) -> RouteMatch? {
        let recipient = RecipientAddress(address, delimiters: delimiters)
        for route in routes where route.accepts(recipient) {
            return RouteMatch(route: route.name, endpoints: route.endpoints, tag: recipient.tag)
        }
        return nil
    }

    /// The plus-tag of `address` (`support+billing@…` → `billing`), if it has one.
    package static func tag(of address: String, delimiters: Set<Character> = ["+"]) -> String? {
        RecipientAddress(address, delimiters: delimiters).tag
    }

    /// Whether some route accepts every recipient.
    package var hasCatchAll: Bool { routes.contains { $0.conditions.contains { $0.isCatchAll } } }
}

/// One route: a name, what it matches (any of `conditions`), where it sends (every endpoint: fan-out).
package struct Route: Sendable {
    package var name: String
    /// The route matches when any condition does.
    package var conditions: [RouteCondition]
    /// Endpoint names; the message goes to each of them.
    package var endpoints: [String]

    package init(name: String, conditions: [RouteCondition], endpoints: [String]) {
        self.name = name
        self.conditions = conditions
        self.endpoints = endpoints
    }

    func accepts(_ recipient: RecipientAddress) -> Bool { conditions.contains { $0.accepts(recipient) } }
}

/// The result of routing one recipient.
package struct RouteMatch: Sendable, Hashable {
    package var route: String
    package var endpoints: [String]
    /// The plus-tag of the recipient (`support+billing@` → `billing`), if any.
    package var tag: String?
}

/// One condition of a route; every test it has must hold. With none, it matches everything
/// (a catch-all).
package struct RouteCondition: Sendable {
    /// A whole address; `support@example.com` also matches `support+anything@example.com`.
    package var address: String?
    /// A domain (`example.com`), or `*.example.com` for its subdomains.
    package var domain: String?
    /// A glob (`*`, `?`) over the local part without its tag (`alert*`).
    package var localPart: String?
    /// The plus-tag must equal this (`billing`).
    package var tag: String?
    /// A regular expression that must match the whole address, case-insensitively.
    package var regex: AddressPattern?

    package init(
        address: String? = nil,
        domain: String? = nil,
        localPart: String? = nil,
        tag: String? = nil,
        regex: AddressPattern? = nil
    ) {
        self.address = address?.lowercased()
        self.domain = domain?.lowercased()
        self.localPart = localPart?.lowercased()
        self.tag = tag?.lowercased()
        self.regex = regex
    }

    package var isCatchAll: Bool { address == nil && domain == nil && localPart == nil && tag == nil && regex == nil }

    func accepts(_ recipient: RecipientAddress) -> Bool {
        if let address, address != recipient.full && address != recipient.untagged { return false }
        if let domain {
            if domain.hasPrefix("*.") {
                guard recipient.domain.hasSuffix(String(domain.dropFirst())) else { return false }
            } else if domain != recipient.domain {
                return false
            }
        }
        if let localPart, !Glob.matches(pattern: Array(localPart), text: Array(recipient.baseLocal)) { return false }
        if let tag, tag != recipient.tag?.lowercased() { return false }
        if let regex, !regex.matches(recipient.original) { return false }
        return true
    }

    /// A short description for `check-config`.
    package var summary: String {
        if isCatchAll { return "*" }
        var parts: [String] = []
        if let address { parts.append("address=\(address)") }
        if let domain { parts.append("domain=\(domain)") }
        if let localPart { parts.append("local=\(localPart)") }
        if let tag { parts.append("tag=\(tag)") }
        if let regex { parts.append("regex=\(regex.pattern)") }
        return parts.joined(separator: " ")
    }
}

/// A compiled regular expression over addresses (compiled once, immutable, shared).
package final class AddressPattern: @unchecked Sendable {
    package let pattern: String
    private let regex: Regex<AnyRegexOutput>

    /// Compiles `pattern`; throws the compiler's message when it is not a valid expression.
    package init(_ pattern: String) throws {
        self.pattern = pattern
        regex = try Regex(pattern).ignoresCase()
    }

    package func matches(_ address: String) -> Bool { (try? regex.wholeMatch(in: address)) != nil }
}

/// An envelope recipient split for matching: lower-cased, local part, tag, domain.
struct RecipientAddress {
    let original: String
    let full: String
    let baseLocal: String
    let tag: String?
    let domain: String

    init(_ address: String, delimiters: Set<Character>) {
        original = address
        full = address.lowercased()
        let local: Substring
        if let at = full.lastIndex(of: "@") {
            local = full[..<at]
            domain = String(full[full.index(after: at)...])
        } else {
            local = Substring(full)
            domain = ""
        }
        // The tag of the original spelling (templates show it as written).
        if let cut = local.firstIndex(where: { delimiters.contains($0) }),
            local.first.map({ !delimiters.contains($0) }) ?? false
        {
            baseLocal = String(local[..<cut])
            let originalLocal = address.lastIndex(of: "@").map { address[..<$0] } ?? Substring(address)
            let offset = local.distance(from: local.startIndex, to: cut)
            let tagStart =
                originalLocal.index(originalLocal.startIndex, offsetBy: offset + 1, limitedBy: originalLocal.endIndex)
                ?? originalLocal.endIndex
            let tagText = String(originalLocal[tagStart...])
            tag = tagText.isEmpty ? nil : tagText
        } else {
            baseLocal = String(local)
            tag = nil
        }
    }

    var untagged: String { domain.isEmpty ? baseLocal : "\(baseLocal)@\(domain)" }
}

/// Shell-style globs: `*` any run, `?` one character; everything else literal.
enum Glob {
    static func matches(pattern: [Character], text: [Character]) -> Bool {
        var p = 0
        var t = 0
        var star = -1
        var mark = 0
        while t < text.count {
            if p < pattern.count && (pattern[p] == "?" || pattern[p] == text[t]) {
                p += 1
                t += 1
            } else if p < pattern.count && pattern[p] == "*" {
                star = p
                mark = t
                p += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}
