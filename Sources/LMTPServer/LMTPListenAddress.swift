/// Where an LMTP server listens.
public enum LMTPListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// A UNIX-domain socket at `path`, given file mode `mode` after binding (e.g. `0o660`).
    case unix(path: String, mode: UInt32 = 0o660)
    /// A TCP socket; port 0 picks a free port (see ``LMTPServer/waitUntilListening()``).
    case tcp(host: String, port: Int)

    public var description: String {
        switch self {
        case .unix(let path, _): return "unix:\(path)"
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    /// Parses `HOST:PORT` or `[IPv6]:PORT`.
    public static func parseTCP(_ text: String) -> LMTPListenAddress? {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        if host.isEmpty { host = "127.0.0.1" }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        return .tcp(host: String(host), port: port)
    }
}
