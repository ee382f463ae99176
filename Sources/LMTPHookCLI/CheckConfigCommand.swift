import ArgumentParser
import Foundation
import LMTPHook

/// `lmtphook check-config`: validate a configuration file and print what it means.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract:
            "Validate a configuration file; print the effective configuration (secrets masked) and the route table.",
        discussion:
            "Exit status 0 when the file is valid (warnings are printed on stderr), 1 with the error (file:line: key: problem) otherwise."
    )

    @Argument(help: ArgumentHelp("The configuration file.", valueName: "file"))
    var file: String = "/etc/lmtphook/lmtphook.yaml"

    @Option(
        name: .customLong("route"),
        help: ArgumentHelp("Also show where this recipient goes; repeatable.", valueName: "address")
    )
    var addresses: [String] = []

    func run() throws {
        let config: ConfigFile
        do {
            config = try ConfigFile.load(path: file)
        } catch {
            FileHandle.standardError.write(Data("lmtphook check-config: \(error)\n".utf8))
            throw ExitCode.failure
        }
        print(config.summary)
        let table = config.relay.routes
        for address in addresses {
            if let match = table?.resolve(address) {
                print(
                    "route \(address) -> \(match.route) -> \(match.endpoints.joined(separator: ", "))\(match.tag.map { " (tag \($0))" } ?? "")"
                )
            } else {
                print("route \(address) -> \(table == nil ? "local receiver" : "no route: 550 5.1.1 at RCPT")")
            }
        }
        for warning in config.warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        print("configuration OK")
    }
}
