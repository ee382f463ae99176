import Crypto

/// Mailgun's webhook signature (the `timestamp`, `token` and `signature` form fields): the
/// lowercase hex HMAC-SHA256 of `timestamp` + `token` under the webhook signing key (a plain
/// string). It covers neither the body nor the URL; receivers check it, refuse old timestamps
/// and remember tokens, so every attempt gets a fresh timestamp and token.
package struct MailgunSignature: Sendable, Hashable {
    /// Unix seconds.
    package var timestamp: Int64
    /// 50 random characters.
    package var token: String
    /// Lowercase hex HMAC-SHA256.
    package var signature: String

    /// Signs `timestamp` and `token` with `key`.
    package init(key: String, timestamp: Int64, token: String) {
        self.timestamp = timestamp
        self.token = token
        let mac = HMAC<SHA256>.authenticationCode(
            for: Array("\(timestamp)\(token)".utf8),
            using: SymmetricKey(data: Array(key.utf8))
        )
        let hex = Array("0123456789abcdef".utf8)
        signature = String(decoding: mac.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] }, as: UTF8.self)
    }

    /// A fresh token: 50 characters of `[0-9a-z]` from the system's random source (or `random`).
    package static func token(using random: inout some RandomNumberGenerator) -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
        return String(
            decoding: (0..<50).map { _ in alphabet[Int(random.next(upperBound: UInt8(alphabet.count)))] },
            as: UTF8.self
        )
    }
}
