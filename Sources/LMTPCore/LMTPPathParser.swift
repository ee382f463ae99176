/// Parses the path of `MAIL FROM:` / `RCPT TO:` (RFC 5321 §4.1.2) liberally but safely:
/// `<>`, source routes, quoted local parts, address literals, UTF-8 (RFC 6531), `<Postmaster>`,
/// and the common missing-brackets form (`MAIL FROM:a@b`).
enum LMTPPathParser {
    enum Failure: Error, Equatable {
        /// The command's shape is wrong (no closing bracket, junk after the path).
        case syntax
        /// The path is well formed but the address inside is not a valid mailbox.
        case address
    }

    enum Path: Equatable {
        case null
        case mailbox(LMTPMailbox)
    }

    /// Splits `bytes` (what follows `FROM:`/`TO:`, leading spaces already skipped) into the path and
    /// the remaining parameter text (starting after the separating space).
    static func parse(_ bytes: ArraySlice<UInt8>) throws(Failure) -> (path: Path, parameters: ArraySlice<UInt8>) {
        var index = bytes.startIndex
        let content: ArraySlice<UInt8>
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "<") {
            index += 1
            let start = index
            var inQuotes = false
            while true {
                guard index < bytes.endIndex else { throw .syntax }
                let byte = bytes[index]
                if inQuotes {
                    if byte == UInt8(ascii: "\\") {
                        index += 1
                    } else if byte == UInt8(ascii: "\"") {
                        inQuotes = false
                    }
                } else if byte == UInt8(ascii: "\"") {
                    inQuotes = true
                } else if byte == UInt8(ascii: ">") {
                    break
                } else if byte == UInt8(ascii: "<") {
                    throw .syntax
                }
                index += 1
            }
            content = bytes[start..<index]
            index += 1  // past '>'
        } else {
            let start = index
            while index < bytes.endIndex, bytes[index] != UInt8(ascii: " ") { index += 1 }
            content = bytes[start..<index]
            if content.isEmpty || content.contains(UInt8(ascii: ">")) { throw .syntax }
        }
        let parameters: ArraySlice<UInt8>
        if index == bytes.endIndex {
            parameters = bytes[index...]
        } else if bytes[index] == UInt8(ascii: " ") {
            parameters = bytes[(index + 1)...]
        } else {
            throw .syntax
        }
        if content.isEmpty { return (.null, parameters) }
        return (.mailbox(try parseMailbox(stripSourceRoute(content))), parameters)
    }

    /// Removes an `@a,@b:` source route (RFC 5321 App. C), checking its shape.
    private static func stripSourceRoute(_ content: ArraySlice<UInt8>) throws(Failure) -> ArraySlice<UInt8> {
        guard content.first == UInt8(ascii: "@") else { return content }
        guard let colon = content.firstIndex(of: UInt8(ascii: ":")) else { throw .address }
        for hop in content[content.startIndex..<colon].split(
            separator: UInt8(ascii: ","),
            omittingEmptySubsequences: false
        ) {
            guard hop.first == UInt8(ascii: "@"), hop.count > 1, isValidDomain(hop.dropFirst()) else { throw .address }
        }
        return content[(colon + 1)...]
    }

    private static func parseMailbox(_ content: ArraySlice<UInt8>) throws(Failure) -> LMTPMailbox {
        // The last '@' outside quotes separates local part and domain.
        var inQuotes = false
        var at: Int? = nil
        var index = content.startIndex
        while index < content.endIndex {
            let byte = content[index]
            if inQuotes {
                if byte == UInt8(ascii: "\\") { index += 1 } else if byte == UInt8(ascii: "\"") { inQuotes = false }
            } else if byte == UInt8(ascii: "\"") {
                inQuotes = true
            } else if byte == UInt8(ascii: "@") {
                at = index
            }
            index += 1
        }
        if inQuotes { throw .address }
        guard let at else {
            // Only <Postmaster> may come without a domain (RFC 5321 §4.1.1.3).
            guard isValidLocalPart(content), String(decoding: content, as: UTF8.self).lowercased() == "postmaster"
            else {
                throw .address
            }
            return LMTPMailbox(localPart: String(decoding: content, as: UTF8.self), domain: nil)
        }
        let local = content[content.startIndex..<at]
        let domain = content[(at + 1)...]
        guard isValidLocalPart(local), isValidDomain(domain) else { throw .address }
        return LMTPMailbox(
            localPart: String(decoding: local, as: UTF8.self),
            domain: String(decoding: domain, as: UTF8.self)
        )
    }

    /// A quoted string, or a run of atext characters and dots (consecutive dots tolerated:
    /// real senders use them and a final delivery agent should not bounce over it). UTF-8 allowed.
    static func isValidLocalPart(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty else { return false }
        if bytes.first == UInt8(ascii: "\"") {
            guard bytes.count >= 2, bytes.last == UInt8(ascii: "\"") else { return false }
            var index = bytes.startIndex + 1
            let end = bytes.endIndex - 1
            while index < end {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\\") {
                    index += 1
                    guard index < end, bytes[index] >= 0x20, bytes[index] != 0x7F else { return false }
                } else if byte == UInt8(ascii: "\"") || byte < 0x20 || byte == 0x7F {
                    return false
                }
                index += 1
            }
            return true
        }
        return bytes.allSatisfy { isAtext($0) || $0 == UInt8(ascii: ".") }
    }

    /// A domain name (labels of letters, digits, hyphens, UTF-8; no empty label) or an address literal.
    static func isValidDomain(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        if bytes.first == UInt8(ascii: "[") {
            guard bytes.count > 2, bytes.last == UInt8(ascii: "]") else { return false }
            return bytes.dropFirst().dropLast().allSatisfy {
                $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "[") && $0 != UInt8(ascii: "]") && $0 != UInt8(ascii: "\\")
            }
        }
        for label in bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.count <= 63 else { return false }
            for byte in label
            where !(isAlphaNumeric(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte >= 0x80) {
                return false
            }
        }
        return true
    }

    static func isAlphaNumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }

    /// RFC 5322 atext, plus UTF-8 bytes (RFC 6531 atext extension).
    static func isAtext(_ byte: UInt8) -> Bool {
        if isAlphaNumeric(byte) || byte >= 0x80 { return true }
        switch byte {
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"),
            UInt8(ascii: "="), UInt8(ascii: "?"), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
            UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
