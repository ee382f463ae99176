import Foundation
import LMTPHookTestSupport
import MailCore
import Testing

/// Every message of ../shared/corpus (real-world test mail from public parser test suites) and
/// every hand-written golden message: parsed within a time bound, never crashing, and the
/// payload validates against deploy/schema/payload-v1.schema.json (checked with Python's jsonschema).
@Suite("Payload v1 over the shared corpus")
struct PayloadCorpusTests {
    static let root = Binary.packageRoot
    static let corpus = URL(fileURLWithPath: Prerequisite.sharedPath).appendingPathComponent("corpus")

    static func emlFiles(under directory: URL) -> [URL] {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else {
            return []
        }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "eml" }.sorted { $0.path < $1.path }
    }

    @Test("every golden message parses, renders and validates", .requires(.program("/usr/bin/python3")))
    func goldenMessages() async throws {
        let files = Self.emlFiles(under: Self.root.appendingPathComponent("Tests/MailCoreTests/Messages"))
        #expect(files.count >= 30)
        try await sweep(files)
    }

    @Test(
        "every message of the shared corpus parses, renders and validates",
        .requires(.sharedFolder, .program("/usr/bin/python3"))
    )
    func sharedCorpus() async throws {
        let files = Self.emlFiles(under: Self.corpus)
        #expect(files.count >= 300, "the shared corpus should hold about 392 messages")
        try await sweep(files)
    }

    /// Parses and renders each file within a time bound, then validates every document against the schema.
    private func sweep(_ files: [URL]) async throws {
        let output = TemporaryDirectory("lmtphook-corpus")
        defer { output.remove() }
        // Parsing hundreds of messages is a long CPU loop: on a thread of its own, not the cooperative pool.
        let outputPath = output.path
        let (problems, slowest) = try await blocking { () -> ([String], (name: String, duration: Duration)) in
            let envelope = MailEnvelope(mailFrom: "", rcptTo: ["rcpt@example.test"], lhlo: "mx.example.test")
            var problems: [String] = []
            var slowest = (name: "", duration: Duration.zero)
            for (index, file) in files.enumerated() {
                let raw = try Array(Data(contentsOf: file))
                let started = ContinuousClock.now
                let id = MessagePayload.id(raw: raw, recipients: envelope.rcptTo, endpoint: "sweep")
                let rendered = MessagePayload.render(
                    id: id,
                    receivedAt: .now(),
                    envelope: envelope,
                    raw: raw,
                    options: PayloadOptions(attachments: .inline(maxBytes: 4096))
                )
                let duration = ContinuousClock.now - started
                if duration > slowest.duration { slowest = (file.lastPathComponent, duration) }
                // Generous for a debug build on a loaded 2-core machine; a release build takes milliseconds.
                if duration >= .seconds(10) { problems.append("\(file.path) took \(duration)") }
                if (try? JSONSerialization.jsonObject(with: Data(rendered.json))) as? [String: Any] == nil {
                    problems.append("\(file.path): not a JSON object")
                }
                writeFile(
                    "\(outputPath)/\(String(format: "%04d.json", index))",
                    String(decoding: rendered.json, as: UTF8.self)
                )
            }
            return (problems, slowest)
        }
        #expect(problems.isEmpty, "\(problems)")
        print("corpus sweep: \(files.count) messages, slowest \(slowest.name) \(slowest.duration)")
        let validation = await runProcess(
            "/usr/bin/python3",
            [
                Self.root.appendingPathComponent("deploy/schema/validate.py").path,
                Self.root.appendingPathComponent("deploy/schema/payload-v1.schema.json").path, output.path,
            ]
        )
        #expect(validation.status == 0, "\(validation.output)")
        #expect(validation.output.contains("validated \(files.count) documents, 0 invalid"), "\(validation.output)")
    }

    @Test("the same bytes, recipients and endpoint give the same id; any change gives another")
    func idempotencyKey() {
        let raw = Array("Subject: x\r\n\r\nbody\r\n".utf8)
        let id = MessagePayload.id(raw: raw, recipients: ["a@b"], endpoint: "https://e/")
        #expect(id == MessagePayload.id(raw: raw, recipients: ["a@b"], endpoint: "https://e/"))
        #expect(id.count == 26)
        #expect(id != MessagePayload.id(raw: raw + [0x20], recipients: ["a@b"], endpoint: "https://e/"))
        #expect(id != MessagePayload.id(raw: raw, recipients: ["a@b", "c@d"], endpoint: "https://e/"))
        #expect(id != MessagePayload.id(raw: raw, recipients: ["a@b"], endpoint: "https://f/"))
    }
}
