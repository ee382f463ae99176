import LMTPServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small blocking LMTP client over a UNIX socket or TCP: used by `lmtphook demo` and
/// `lmtphook send`, and by the tests. It blocks its thread; call it from a thread pool, not from
/// an event loop or the cooperative pool in production code. One user at a time: it may move
/// between threads (hence `@unchecked Sendable`) but must not be used from two at once.
package final class LMTPClientConnection: @unchecked Sendable {
    /// A reply as read: the code and its text lines (without code prefixes).
    package struct Reply: Sendable, Hashable, CustomStringConvertible {
        package var code: Int
        package var lines: [String]
        package var description: String { "\(code) \(lines.last ?? "")" }
    }

    /// A connection or protocol failure.
    package struct Failure: Error, Sendable, CustomStringConvertible {
        package let description: String
        package init(_ description: String) { self.description = description }
    }

    private let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to a UNIX socket path.
    package init(unixPath path: String, timeoutSeconds: Int = 30) throws {
        fd = UnixDomainSocket.connect(path)
        guard fd >= 0 else { throw Failure("connect to \(path): \(Self.lastError())") }
        setTimeout(timeoutSeconds)
    }

    /// Connects to an IPv4 or IPv6 address literal (or `localhost`) and port.
    package init(host: String, port: Int, timeoutSeconds: Int = 30) throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Failure("cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        var connected: Int32 = -1
        var lastMessage = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            let candidate = socket(current.pointee.ai_family, current.pointee.ai_socktype, current.pointee.ai_protocol)
            if candidate >= 0 {
                if connect(candidate, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 {
                    connected = candidate
                    break
                }
                lastMessage = Self.lastError()
                close(candidate)
            }
            entry = current.pointee.ai_next
        }
        guard connected >= 0 else { throw Failure("connect to \(host):\(port): \(lastMessage)") }
        fd = connected
        setTimeout(timeoutSeconds)
    }

    deinit { close(fd) }

    private func setTimeout(_ seconds: Int) {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }

    /// Sends bytes as they are.
    package func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure("send: \(Self.lastError())")
            }
            offset += written
        }
    }

    /// Sends text as UTF-8.
    package func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Half-closes the sending side.
    package func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads one reply line; `nil` at end of stream.
    package func readLine() throws -> String? {
        while true {
            if let lineFeed = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<lineFeed])
                buffer.removeFirst(lineFeed + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return nil }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure("receive: \(Self.lastError())")
            }
            buffer.append(contentsOf: chunk[..<count])
        }
    }

    /// Reads one (possibly multi-line) reply.
    package func readReply() throws -> Reply {
        var lines: [String] = []
        while true {
            guard let line = try readLine() else { throw Failure("connection closed while waiting for a reply") }
            let bytes = Array(line.utf8)
            guard bytes.count >= 3, let code = Int(String(decoding: bytes[0..<3], as: UTF8.self)) else {
                throw Failure("malformed reply: \(line)")
            }
            lines.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
            if bytes.count == 3 || bytes[3] != UInt8(ascii: "-") { return Reply(code: code, lines: lines) }
        }
    }

    /// Reads `count` replies.
    package func readReplies(_ count: Int) throws -> [Reply] {
        try (0..<count).map { _ in try readReply() }
    }

    /// `true` when the server has closed the connection (reads end of stream).
    package func readsEndOfStream() -> Bool {
        (try? readLine()) == nil
    }

    /// A whole pipelined transaction: LHLO (when `lhlo` is set, after reading the greeting), MAIL,
    /// RCPTs, DATA, the dot-stuffed message. Returns one reply per accepted recipient.
    package func deliver(
        lhlo: String? = "client.local",
        from sender: String,
        to recipients: [String],
        message: [UInt8]
    ) throws -> [Reply] {
        let (rcptReplies, data) = try begin(lhlo: lhlo, from: sender, to: recipients)
        guard data.code == 354 else { throw Failure("DATA: \(data) (RCPT: \(rcptReplies))") }
        try send(Self.dotStuff(message))
        return try readReplies(rcptReplies.filter { $0.code / 100 == 2 }.count)
    }

    /// Like ``deliver(lhlo:from:to:message:)``, but with one reply per recipient in RCPT order:
    /// the RCPT reply for a refused recipient, the final reply after the data for an accepted one.
    package func deliverEach(
        lhlo: String? = "client.local",
        from sender: String,
        to recipients: [String],
        message: [UInt8]
    ) throws -> [Reply] {
        let (rcptReplies, data) = try begin(lhlo: lhlo, from: sender, to: recipients)
        guard data.code == 354 else {
            guard rcptReplies.allSatisfy({ $0.code / 100 != 2 }) else {
                throw Failure("DATA: \(data) (RCPT: \(rcptReplies))")
            }
            return rcptReplies
        }
        try send(Self.dotStuff(message))
        var finals = try readReplies(rcptReplies.filter { $0.code / 100 == 2 }.count).makeIterator()
        return rcptReplies.map { $0.code / 100 == 2 ? finals.next() ?? $0 : $0 }
    }

    /// Greeting, LHLO, then MAIL, every RCPT and DATA pipelined; the RCPT replies and the DATA reply.
    private func begin(lhlo: String?, from sender: String, to recipients: [String]) throws -> ([Reply], Reply) {
        if let lhlo {
            let greeting = try readReply()
            guard greeting.code == 220 else { throw Failure("greeting: \(greeting)") }
            try send("LHLO \(lhlo)\r\n")
            let reply = try readReply()
            guard reply.code == 250 else { throw Failure("LHLO: \(reply)") }
        }
        var command = "MAIL FROM:<\(sender)>\r\n"
        for recipient in recipients { command += "RCPT TO:<\(recipient)>\r\n" }
        try send(command + "DATA\r\n")
        let mail = try readReply()
        let rcptReplies = try readReplies(recipients.count)
        let data = try readReply()
        guard mail.code == 250 else { throw Failure("MAIL: \(mail)") }
        return (rcptReplies, data)
    }

    /// Dot-stuffs a message, normalises line ends to CRLF and appends the terminating `.CRLF`.
    package static func dotStuff(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 64 + 5)
        var atLineStart = true
        var index = 0
        while index < message.count {
            let byte = message[index]
            if atLineStart && byte == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            if byte == 0x0A {
                if out.last != 0x0D { out.append(0x0D) }
                out.append(0x0A)
                atLineStart = true
            } else {
                out.append(byte)
                atLineStart = false
            }
            index += 1
        }
        if !atLineStart { out += [0x0D, 0x0A] }
        out += Array(".\r\n".utf8)
        return out
    }
}
