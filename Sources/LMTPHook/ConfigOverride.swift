import Yams

/// A command-line flag that sets one configuration key. Flags are overrides of the file's keys —
/// one settings model: the same parser reads both, so a flag has the file key's default,
/// validation and meaning, and an error names the flag.
package struct ConfigOverride: @unchecked Sendable {
    /// The flag as typed (`--sync-budget`), named in errors.
    package var flag: String
    /// The key path: `delivery.sync_budget`; `listen[+]` appends to a list; `endpoints[0].url`
    /// sets a field of a list item (created when missing).
    package var key: String
    package var value: Node

    package init(_ flag: String, _ key: String, _ value: Node) {
        self.flag = flag
        self.key = key
        self.value = value
    }

    /// A scalar value, as it would be written in the file.
    package init(_ flag: String, _ key: String, _ text: String) {
        self.init(flag, key, Node(text))
    }

    /// A list of scalars.
    package init(_ flag: String, _ key: String, list: [String]) {
        self.init(flag, key, Node.sequence(Node.Sequence(list.map { Node($0) })))
    }

    /// A mapping of scalars (keys in the given order).
    package init(_ flag: String, _ key: String, mapping: [(String, String)]) {
        self.init(flag, key, Node.mapping(Node.Mapping(mapping.map { (Node($0.0), Node($0.1)) })))
    }

    private struct Segment {
        var name: String
        /// `nil`: a mapping key; `-1`: append to the list; else the list index.
        var index: Int?
    }

    private var segments: [Segment] {
        key.split(separator: ".").map { part in
            guard let open = part.firstIndex(of: "["), part.hasSuffix("]") else { return Segment(name: String(part)) }
            let inside = part[part.index(after: open)..<part.index(before: part.endIndex)]
            return Segment(name: String(part[..<open]), index: inside == "+" ? -1 : Int(inside) ?? 0)
        }
    }

    /// Sets the value in `root` (a mapping; anything else is replaced); returns the key path the
    /// parser reports for it (`listen[2]`).
    func apply(to root: inout Node) -> String {
        var path: [String] = []
        root = Self.set(value, at: segments[...], in: root, path: &path)
        return path.joined(separator: ".")
    }

    private static func set(
        _ value: Node,
        at segments: ArraySlice<Segment>,
        in node: Node,
        path: inout [String]
    ) -> Node {
        guard let segment = segments.first else { return value }
        var mapping = node.mapping ?? Node.Mapping([])
        let rest = segments.dropFirst()
        guard let index = segment.index else {
            path.append(segment.name)
            mapping[segment.name] = set(
                value,
                at: rest,
                in: mapping[segment.name] ?? Node.mapping(Node.Mapping([])),
                path: &path
            )
            return .mapping(mapping)
        }
        var items = mapping[segment.name]?.sequence.map { Array($0) } ?? []
        let position = index < 0 ? items.count : index
        while items.count <= position { items.append(.mapping(Node.Mapping([]))) }
        path.append("\(segment.name)[\(position)]")
        items[position] = set(value, at: rest, in: items[position], path: &path)
        mapping[segment.name] = .sequence(Node.Sequence(items))
        return .mapping(mapping)
    }
}
