import ArgumentParser
import LMTPHook
import LMTPServer
import NIOPosix
import Spool

#if canImport(Glibc)
import Glibc
#endif

/// `lmtphook send`: deliver one message over LMTP (for trying a server by hand).
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send one message over LMTP and print the reply for each recipient.",
        discussion: "Exit status 0 when every recipient got 2xx, 1 otherwise."
    )

    @OptionGroup var target: LMTPTargetOptions

    @Option(help: ArgumentHelp("Envelope sender; empty for <>.", valueName: "address"))
    var from: String = ""

    @Option(name: .customLong("to"), help: ArgumentHelp("Envelope recipient; repeatable.", valueName: "address"))
    var recipients: [String] = []

    @Argument(help: ArgumentHelp("Message file (RFC 5322); stdin when absent.", valueName: "file"))
    var file: String?

    func validate() throws {
        try target.check()
        if recipients.isEmpty { throw ValidationError("give at least one --to ADDRESS") }
    }

    func run() async throws {
        let message = try readMessage()
        let replies = try await Self.deliver(
            message,
            socket: target.socket,
            server: target.server,
            from: from,
            to: recipients
        )
        for reply in replies { print("\(reply.code) \(reply.lines.joined(separator: " "))") }
        if replies.count < recipients.count || replies.contains(where: { $0.code / 100 != 2 }) {
            throw ExitCode.failure
        }
    }

    /// One LMTP transaction on a blocking connection (off the cooperative pool); one reply per recipient.
    static func deliver(
        _ message: [UInt8],
        socket: String?,
        server: String?,
        from: String,
        to recipients: [String],
        each: Bool = false
    ) async throws -> [LMTPClientConnection.Reply] {
        try await NIOThreadPool.singleton.runIfActive {
            let connection: LMTPClientConnection
            if let socket {
                connection = try LMTPClientConnection(unixPath: socket)
            } else if case .tcp(let host, let port) = LMTPListenAddress.parseTCP(server ?? "") {
                connection = try LMTPClientConnection(host: host, port: port)
            } else {
                throw ValidationError("no server address")
            }
            let replies =
                try each
                ? connection.deliverEach(from: from, to: recipients, message: message)
                : connection.deliver(from: from, to: recipients, message: message)
            try connection.send("QUIT\r\n")
            _ = try? connection.readReply()
            return replies
        }
    }

    private func readMessage() throws -> [UInt8] {
        let bytes = file.map { FileContents.read(path: $0) } ?? FileContents.read(fileDescriptor: STDIN_FILENO)
        guard let bytes else {
            throw ValidationError("cannot read \(file ?? "standard input"): \(String(cString: strerror(errno)))")
        }
        return bytes
    }
}

/// Where the LMTP server to talk to is: `--socket PATH` or `--server HOST:PORT`.
struct LMTPTargetOptions: ParsableArguments {
    @Option(help: ArgumentHelp("UNIX socket of the LMTP server.", valueName: "path"))
    var socket: String?

    @Option(help: ArgumentHelp("TCP address of the LMTP server.", valueName: "host:port"))
    var server: String?

    /// Checked by the commands that connect (not automatically: `send-test --print` connects nowhere).
    func check() throws {
        if (socket == nil) == (server == nil) {
            throw ValidationError("give exactly one of --socket PATH or --server HOST:PORT")
        }
        if let server, LMTPListenAddress.parseTCP(server) == nil {
            throw ValidationError("--server takes HOST:PORT, got \(server)")
        }
    }
}
