import Foundation
import Spool
import Yams

/// A configuration error: the file, the line, the key path and what is wrong with it.
package struct ConfigError: Error, Sendable, CustomStringConvertible {
    package var file: String
    package var line: Int?
    /// `endpoints[1].url`.
    package var key: String
    package var message: String
    /// The command-line flag that set the key, when one did (see ``ConfigOverride``).
    package var flag: String?

    package init(file: String, line: Int?, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    package var description: String {
        if let flag { return key.isEmpty ? "\(flag): \(message)" : "\(flag) (\(key)): \(message)" }
        let location = line.map { "\(file):\($0)" } ?? file
        return key.isEmpty ? "\(location): \(message)" : "\(location): \(key): \(message)"
    }
}

/// A YAML node with the path that leads to it, for reading configuration with precise errors.
struct ConfigNode {
    let node: Node
    let path: String
    let file: String

    var line: Int? { node.mark?.line }

    func error(_ message: String) -> ConfigError { ConfigError(file: file, line: line, key: path, message: message) }

    func child(_ key: String, _ node: Node) -> ConfigNode {
        ConfigNode(node: node, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    /// The entries of a mapping, after checking that every key is one of `allowed`.
    func mapping(allowed: [String]) throws(ConfigError) -> [String: ConfigNode] {
        guard case .mapping(let mapping) = node else { throw error("must be a mapping (key: value)") }
        var result: [String: ConfigNode] = [:]
        for (key, value) in mapping {
            let name = key.string ?? ""
            guard allowed.contains(name) else {
                let suggestion = ConfigNode.closest(to: name, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                throw ConfigError(
                    file: file,
                    line: key.mark?.line,
                    key: path,
                    message: "unknown key '\(name)'\(suggestion)"
                )
            }
            result[name] = child(name, value)
        }
        return result
    }

    func sequence() throws(ConfigError) -> [ConfigNode] {
        guard case .sequence(let sequence) = node else { throw error("must be a list") }
        return sequence.enumerated().map { ConfigNode(node: $1, path: "\(path)[\($0)]", file: file) }
    }

    /// A list, or a single item taken as a list of one.
    func list() throws(ConfigError) -> [ConfigNode] {
        if case .sequence = node { return try sequence() }
        return [self]
    }

    func string() throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node else { throw error("must be a single value") }
        return scalar.string
    }

    func nonEmptyString() throws(ConfigError) -> String {
        let value = try string()
        guard !value.isEmpty else { throw error("must not be empty") }
        return value
    }

    func int(in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let value = node.int else { throw error("must be a whole number, got '\((try? string()) ?? "")'") }
        guard range.contains(value) else {
            throw error("must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    func bool() throws(ConfigError) -> Bool {
        guard let value = node.bool else { throw error("must be true or false, got '\((try? string()) ?? "")'") }
        return value
    }

    /// `5s`, `300ms`, `2m`, `1h`, `5d`, or a bare number of seconds.
    func milliseconds() throws(ConfigError) -> Int64 {
        let text = try string()
        if let seconds = Double(text), seconds >= 0 { return Int64(seconds * 1000) }
        guard let value = RetryPolicy.parseDuration(text) else {
            throw error("must be a duration like 300ms, 5s, 2m, 1h or 5d, got '\(text)'")
        }
        return value
    }

    func byteCount() throws(ConfigError) -> Int {
        let text = try string()
        guard let value = ByteSize.parse(text) else {
            throw error("must be a byte count like 1048576, 512K, 50M or 1G, got '\(text)'")
        }
        return value
    }

    func oneOf(_ choices: [String]) throws(ConfigError) -> String {
        let value = try string()
        guard choices.contains(value) else {
            throw error("must be one of \(choices.joined(separator: ", ")), got '\(value)'")
        }
        return value
    }

    /// A secret: the value itself, or `{env: NAME}`, or `{file: PATH}` (trailing newline dropped).
    func secret(environment: [String: String], readFile: (String) -> String?) throws(ConfigError) -> SecretValue {
        if case .mapping = node {
            let fields = try mapping(allowed: ["env", "file"])
            guard fields.count == 1 else { throw error("give exactly one of env or file") }
            if let env = fields["env"] {
                let name = try env.nonEmptyString()
                guard let value = environment[name] else { throw env.error("environment variable \(name) is not set") }
                return SecretValue(value: value, source: "env \(name)")
            }
            let file = fields["file"]!
            return try file.secretFile(readFile: readFile)
        }
        return SecretValue(value: try string(), source: "inline")
    }

    func secretFile(readFile: (String) -> String?) throws(ConfigError) -> SecretValue {
        let path = try nonEmptyString()
        guard var value = readFile(path) else { throw error("cannot read \(path)") }
        while value.hasSuffix("\n") || value.hasSuffix("\r") { value.removeLast() }
        return SecretValue(value: value, source: "file \(path)")
    }

    /// The allowed key closest to a misspelt one (edit distance ≤ 2).
    static func closest(to name: String, in allowed: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, x) in a.enumerated() {
                var current = [i + 1]
                for (j, y) in b.enumerated() {
                    current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
                }
                previous = current
            }
            return previous[b.count]
        }
        let scored = allowed.map { ($0, distance(Array(name), Array($0))) }.filter { $0.1 <= 2 }
        return scored.min { $0.1 < $1.1 }?.0
    }
}

/// A secret and where it came from (shown instead of the value by `check-config`).
struct SecretValue {
    var value: String
    var source: String
}

/// Byte counts with optional K/M/G suffixes (powers of 1024).
package enum ByteSize {
    package static func parse(_ text: String) -> Int? {
        let upper = text.uppercased()
        let multipliers: [Character: Int] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
        if let last = upper.last, let multiplier = multipliers[last] {
            guard let value = Int(upper.dropLast()), value >= 0 else { return nil }
            return value.multipliedReportingOverflow(by: multiplier).overflow ? nil : value * multiplier
        }
        guard let value = Int(upper), value >= 0 else { return nil }
        return value
    }
}
