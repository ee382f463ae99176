import Foundation
import LMTPHook
import LMTPHookTestSupport
import Testing

/// The documents stay true: every configuration example parses, every relative link and anchor
/// resolves, and every `lmtphook` flag they name exists in the command line.
@Suite("Documentation")
struct DocumentationTests {
    static let root = Binary.packageRoot

    /// README.md, CHANGELOG.md and every docs/*.md, as (path relative to the root, text).
    static func documents() throws -> [(path: String, text: String)] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { "docs/\($0)" }
        return try (["README.md", "CHANGELOG.md"] + docs).map {
            ($0, try String(contentsOf: root.appendingPathComponent($0), encoding: .utf8))
        }
    }

    /// Fenced code blocks whose info string is exactly `language`.
    static func blocks(_ text: String, language: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let lines = current {
                if line.hasPrefix("```") {
                    blocks.append(lines.joined(separator: "\n") + "\n")
                    current = nil
                } else {
                    current = lines + [line]
                }
            } else if line == "```\(language)" {
                current = []
            }
        }
        return blocks
    }

    @Test(
        "every lmtphook YAML example in README.md and docs/ is a valid configuration (other YAML is fenced `yaml NAME`)"
    )
    func yamlExamples() throws {
        var count = 0
        let deploy = Self.root.appendingPathComponent("deploy").path
        for document in try Self.documents() {
            for block in Self.blocks(document.text, language: "yaml") {
                count += 1
                // Every {env: NAME} gets a value; template files resolve under deploy/; file secrets are stubbed.
                var environment: [String: String] = [:]
                for part in block.components(separatedBy: "{env: ").dropFirst() {
                    let name = String(part.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
                    environment[name] =
                        name.hasSuffix("URL")
                        ? "https://example.net/hook/\(name)"
                        : name.hasSuffix("WEBHOOK_SECRET") ? "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" : "secret-\(name)"
                }
                do {
                    _ = try ConfigFile.parse(block, file: document.path, environment: environment) { name in
                        if name.hasSuffix(".url") { return "https://hooks.slack.com/services/T0/B0/x" }
                        let path =
                            name.hasPrefix("/etc/lmtphook/")
                            ? deploy + "/" + name.dropFirst("/etc/lmtphook/".count) : deploy + "/" + name
                        return readFile(path).map { String(decoding: $0, as: UTF8.self) }
                    }
                } catch {
                    Issue.record("\(document.path): example does not parse: \(error)\n\(block)")
                }
            }
        }
        #expect(count >= 3)
    }

    /// GitHub's anchor for a heading: lowercased, punctuation dropped, spaces to hyphens.
    static func anchor(_ heading: String) -> String {
        let text = heading.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
        return String(
            text.unicodeScalars.compactMap { scalar -> Character? in
                if scalar == " " { return "-" }
                if scalar == "-" || scalar == "_" || CharacterSet.alphanumerics.contains(scalar) {
                    return Character(scalar)
                }
                return nil
            }
        )
    }

    static func anchors(_ text: String) -> Set<String> {
        var inFence = false
        var anchors: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("```") { inFence.toggle() }
            if !inFence && line.hasPrefix("#") { anchors.insert(anchor(String(line))) }
        }
        return anchors
    }

    @Test("every relative link and anchor in README.md, CHANGELOG.md and docs/ resolves")
    func links() throws {
        let documents = try Self.documents()
        var checked = 0
        for document in documents {
            let directory = URL(fileURLWithPath: document.path).deletingLastPathComponent().relativePath
            // Links in prose only: code blocks and `code spans` may show link syntax as text.
            var prose = ""
            var inFence = false
            for line in document.text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("```") { inFence.toggle() }
                guard !inFence else { continue }
                prose +=
                    line.split(separator: "`", omittingEmptySubsequences: false).enumerated()
                    .filter { $0.offset % 2 == 0 }.map(\.element).joined(separator: " ") + "\n"
            }
            var rest = Substring(prose)
            while let open = rest.range(of: "](") {
                rest = rest[open.upperBound...]
                guard let close = rest.firstIndex(of: ")") else { break }
                let target = String(rest[..<close])
                rest = rest[close...]
                if target.hasPrefix("http://") || target.hasPrefix("https://") || target.hasPrefix("mailto:") {
                    continue
                }
                checked += 1
                let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
                let file = parts[0].isEmpty ? document.path : (directory == "." ? "" : directory + "/") + parts[0]
                let url = Self.root.appendingPathComponent(file).standardizedFileURL
                guard FileManager.default.fileExists(atPath: url.path) else {
                    Issue.record("\(document.path): link to \(target): \(file) does not exist")
                    continue
                }
                if parts.count == 2 {
                    let text = try String(contentsOf: url, encoding: .utf8)
                    #expect(
                        Self.anchors(text).contains(String(parts[1])),
                        "\(document.path): no heading for #\(parts[1]) in \(file)"
                    )
                }
            }
        }
        #expect(checked >= 30, "links checked: \(checked)")
    }

    /// Long option names of every command, from the argument parser itself (`--experimental-dump-help`).
    static func options() async throws -> [String: Set<String>] {
        let dump = await runProcess(try Binary.require(), ["--experimental-dump-help"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dump.output.utf8)) as? [String: Any])
        var options: [String: Set<String>] = [:]
        func walk(_ command: [String: Any], path: String) {
            let arguments = command["arguments"] as? [[String: Any]] ?? []
            let names = arguments.flatMap { ($0["names"] as? [[String: Any]] ?? []) }.filter {
                $0["kind"] as? String == "long"
            }
            options[path] = Set(names.compactMap { $0["name"] as? String })
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                walk(sub, path: path + " " + (sub["commandName"] as? String ?? ""))
            }
        }
        walk(try #require(json["command"] as? [String: Any]), path: "lmtphook")
        return options
    }

    @Test("every flag the documents give an lmtphook command exists in that command")
    func flags() async throws {
        let options = try await Self.options()
        #expect(options["lmtphook serve"]?.contains("socket") == true, "\(options.keys.sorted())")
        var checked = 0
        for document in try Self.documents() {
            for line in document.text.split(separator: "\n") {
                // `lmtphook SUB [SUB] … --flag …` up to the end of the code span, command or line.
                var rest = Substring(line)
                while let start = rest.range(of: "lmtphook ") {
                    var command = "lmtphook"
                    var words = rest[start.upperBound...].prefix { !"`|;)\n".contains($0) }.split(separator: " ")
                    while let word = words.first, options["\(command) \(word)"] != nil {
                        command += " \(word)"
                        words.removeFirst()
                    }
                    rest = rest[start.upperBound...]
                    guard command != "lmtphook" || words.first?.hasPrefix("--") == true else { continue }
                    for word in words where word.hasPrefix("--") {
                        let name = String(word.dropFirst(2).prefix { $0.isLetter || $0.isNumber || $0 == "-" })
                        checked += 1
                        #expect(
                            options[command]?.contains(name) == true,
                            "\(document.path): `\(command) --\(name)` is not an option of \(command)"
                        )
                    }
                }
                // The serve flag table: | `--flag …` | default | meaning |
                if document.path == "docs/configuration.md", line.hasPrefix("| `--") {
                    let name = String(line.dropFirst(5).prefix { $0.isLetter || $0.isNumber || $0 == "-" })
                    checked += 1
                    #expect(
                        options["lmtphook serve"]?.contains(name) == true,
                        "docs/configuration.md: `--\(name)` is not a serve option"
                    )
                }
            }
        }
        #expect(checked >= 40, "flags checked: \(checked)")
    }
}
