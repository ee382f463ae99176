import ArgumentParser
import WebhookClient

#if canImport(Glibc)
import Glibc
#endif

/// The `lmtphook` command tree.
package struct LMTPHookCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "lmtphook",
        abstract: "LMTP in, JSON webhook out: a mail delivery agent for Postfix, Exim and any LMTP client.",
        version: WebhookClient.version,
        subcommands: [
            ServeCommand.self, CheckConfigCommand.self, SpoolCommand.self, DemoCommand.self, SinkCommand.self,
            SendCommand.self, SendTestCommand.self,
        ],
        defaultSubcommand: nil
    )

    package init() {}

    /// Process-wide setup, once, before any thread starts: libcurl, SIGPIPE.
    package static func prepareProcess() {
        signal(SIGPIPE, SIG_IGN)
        CurlGlobal.initialize()
    }
}
