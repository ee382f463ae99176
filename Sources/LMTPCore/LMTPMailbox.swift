/// A mailbox from a MAIL or RCPT path: `local-part@domain`, kept exactly as the client sent it
/// (quotes included), with any source route removed.
public struct LMTPMailbox: Sendable, Hashable, CustomStringConvertible {
    /// The local part as sent, e.g. `john` or `"john doe"`.
    public let localPart: String
    /// The domain, or `nil` for the domain-less `<Postmaster>` (RFC 5321 §4.5.1).
    public let domain: String?

    public init(localPart: String, domain: String?) {
        self.localPart = localPart
        self.domain = domain
    }

    /// `local-part@domain`, or just the local part when there is no domain.
    public var address: String {
        guard let domain else { return localPart }
        return "\(localPart)@\(domain)"
    }

    public var description: String { address }
}

/// The argument of `MAIL FROM:`: the null reverse-path `<>` (bounces) or a mailbox.
public enum LMTPReversePath: Sendable, Hashable, CustomStringConvertible {
    case null
    case mailbox(LMTPMailbox)

    /// The address, or the empty string for `<>`.
    public var address: String {
        switch self {
        case .null: return ""
        case .mailbox(let mailbox): return mailbox.address
        }
    }

    public var description: String { "<\(address)>" }
}
