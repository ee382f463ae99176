import MailCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes whole lines to stdout with one `write(2)` each, so concurrent writers never interleave.
package enum StandardOutput {
    /// Writes `text` plus a newline.
    package static func writeLine(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.append(0x0A)
        write(bytes)
    }

    /// Writes raw bytes, retrying short writes.
    package static func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(STDOUT_FILENO, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }

    /// The request body indented for people (keys in the order they were written, schema order for
    /// payload v1), followed by a newline, in one write.
    @Sendable package static func printIndentedJSON(_ request: WebhookSink.Request) {
        var bytes = JSONIndenter.indent(request.body)
        bytes.append(0x0A)
        write(bytes)
    }

    /// The local receiver's default: the request body (one JSON document) as one line on stdout.
    @Sendable package static func printJSONLine(_ request: WebhookSink.Request) {
        var bytes = request.body.filter { $0 != 0x0A && $0 != 0x0D }
        bytes.append(0x0A)
        write(bytes)
    }
}
