import Foundation
import Fuzzing
import Testing

/// The fuzzers' short form in every test run: each seed and every past finding goes through the
/// same harness libFuzzer drives, invariants included. The lmtp seeds are in Corpus/lmtp; the mime
/// seeds are the parser's test messages (Tests/MailCoreTests/Messages, kept once) plus any mime
/// finding in Corpus/mime.
@Suite("Fuzz corpora replay")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")

    static let parserMessages = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("MailCoreTests/Messages")

    static func inputs(_ name: String) throws -> [URL] {
        let own = corpus.appendingPathComponent(name)
        let directories = name == "mime" ? [own, parserMessages] : [own]
        return directories.flatMap { directory in
            ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? [])
                .filter { !$0.lastPathComponent.hasPrefix(".") }
        }
        .sorted { $0.path < $1.path }
    }

    @Test("every seed and past finding passes its fuzzer's invariants", arguments: ["lmtp", "mime"])
    func corpus(_ name: String) throws {
        let files = try Self.inputs(name)
        #expect(files.count >= 10)
        let run = name == "lmtp" ? LMTPSessionFuzzer.run : MessageParserFuzzer.run
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: file))
            bytes.withUnsafeBufferPointer { run($0) }
        }
    }

    @Test func validatorRejectsBrokenJSON() {
        for bad in ["", "{", "{\"a\":}", "[1,]", "\"\u{01}\"", "01", "{\"a\" 1}", "[1] 2", "\"\\x\""] {
            var validator = JSONValidator(Array(bad.utf8))
            let valid = validator.validate()
            #expect(!valid, "\(bad)")
        }
        for good in ["{}", "[]", "{\"a\":[1,-2.5e3,true,false,null,\"\\u00e9\\n\"]}", " 0 "] {
            var validator = JSONValidator(Array(good.utf8))
            let valid = validator.validate()
            #expect(valid, "\(good)")
        }
    }
}
