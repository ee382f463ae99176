import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Something a test needs from the machine: root, a program, the `../shared` folder beside the
/// checkout. Used as a trait, `@Test(.requires(.root))`:
/// - where it is met, the test runs;
/// - where it is not, the test is reported **skipped** with the reason (never a silent pass);
/// - in CI (`CI=true`) it must be met: the test is reported **failed** with the reason, so a green
///   CI run proves that every such test ran.
package struct Prerequisite: Sendable, CustomStringConvertible {
    /// What is missing and how to get it, as the skip or failure message says.
    package let description: String
    private let isMet: @Sendable () -> Bool

    package init(_ description: String, isMet: @escaping @Sendable () -> Bool) {
        self.description = description
        self.isMet = isMet
    }

    /// Whether the prerequisite holds on this machine now.
    package var holds: Bool { isMet() }

    /// Root: mounting a tmpfs, chown, running a Postfix instance.
    package static let root = Prerequisite("needs root (run the README's test command as root or with sudo)") {
        geteuid() == 0
    }

    /// An executable at `path`, installed by the README's test command (`deploy/install-deps.sh --test`).
    package static func program(_ path: String) -> Prerequisite {
        Prerequisite("needs \(path) (deploy/install-deps.sh --test installs it)") { access(path, X_OK) == 0 }
    }

    /// FUSE for the power-loss file system: /dev/fuse and Debian's python3-pyfuse3 (for
    /// /usr/bin/python3), installed by `deploy/install-deps.sh --test`.
    package static let fuse = Prerequisite(
        "needs /dev/fuse and /usr/lib/python3/dist-packages/pyfuse3 (deploy/install-deps.sh --test installs python3-pyfuse3 and fuse3)"
    ) {
        access("/dev/fuse", R_OK | W_OK) == 0 && access("/usr/bin/python3", X_OK) == 0
            && !(try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/python3/dist-packages"))
                .map { $0.filter { $0.hasPrefix("pyfuse3") } }.isNilOrEmpty
    }

    /// The `shared/` folder beside the checkout (the real-world mail corpus and the lab).
    package static let sharedFolder = Prerequisite(
        "needs \(Prerequisite.sharedPath) (the shared corpus beside the checkout)"
    ) {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: Prerequisite.sharedPath, isDirectory: &isDirectory)
            && isDirectory.boolValue
    }

    /// `../shared` next to the package root.
    package static let sharedPath: String = {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared").standardizedFileURL.path
    }()

    /// Whether this run is CI's (`CI=true`), where every prerequisite must hold.
    package static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }
}

/// The error a CI run reports for a prerequisite that does not hold.
package struct PrerequisiteMissing: Error, CustomStringConvertible {
    package let description: String
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only where every prerequisite holds; skips it with the reasons elsewhere, and
    /// fails it with the reasons in CI.
    package static func requires(
        _ prerequisites: Prerequisite...,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Self {
        // The skip message names what is missing here (traits are made when the test run starts).
        let unmet = prerequisites.filter { !$0.holds }
        let reasons = (unmet.isEmpty ? prerequisites : unmet).map(\.description).joined(separator: "; ")
        return .enabled(Comment(rawValue: reasons), sourceLocation: sourceLocation) {
            let missing = prerequisites.filter { !$0.holds }
            guard missing.isEmpty else {
                if Prerequisite.inCI {
                    throw PrerequisiteMissing(
                        description:
                            "CI=true, and a prerequisite does not hold: \(missing.map(\.description).joined(separator: "; "))"
                    )
                }
                return false
            }
            return true
        }
    }
}

extension Optional where Wrapped: Collection {
    fileprivate var isNilOrEmpty: Bool { self?.isEmpty ?? true }
}
