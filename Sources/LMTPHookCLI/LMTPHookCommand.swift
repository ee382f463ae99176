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
        // Big buffers (a message read for parsing, a payload's texts) come from mmap and go back
        // to the system when freed. glibc's default raises this threshold to the largest block
        // freed so far (up to 32 MiB), after which such blocks stay in each thread's arena: with
        // several threads at work the process then keeps a message-sized block per thread
        // (20 concurrent 20 MB mails: 337 MB peak instead of 78 MB). MALLOC_MMAP_THRESHOLD_ in
        // the environment still decides when set.
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil { setMallocOption(mmapThreshold, Int32(largeAllocation)) }
    }

    /// Allocations from this size on are mapped (and unmapped when freed).
    static let largeAllocation = 256 * 1024
    /// `M_MMAP_THRESHOLD` of `<malloc.h>` (not in Swift's Glibc module).
    private static let mmapThreshold: Int32 = -3

    /// glibc's `mallopt`, looked up at run time (its header is not in Swift's Glibc module).
    private static func setMallocOption(_ option: Int32, _ value: Int32) {
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        _ = unsafeBitCast(symbol, to: Mallopt.self)(option, value)
    }
}
