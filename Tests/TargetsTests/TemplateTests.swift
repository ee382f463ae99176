import Foundation
import Targets
import Testing

@Suite("Mustache templates")
struct TemplateTests {
    static func render(
        _ source: String,
        _ fixture: String = "markup",
        contentType: String = "application/json"
    ) throws -> String {
        String(
            decoding: try MessageTemplate(source: source, contentType: contentType).render(
                FormatFixtures.input(fixture)
            ).bytes,
            as: UTF8.self
        )
    }

    @Test func valuesAreJSONEscapedByDefault() throws {
        let out = try Self.render(
            #"{"s": "{{subject}}", "t": "{{text}}", "from": "{{from.display}}", "to": "{{recipient}}", "tag": "{{tag}}"}"#
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: String])
        #expect(object["s"] == "<!channel> @everyone [urgent](https://evil.example) <@U024BE7LH>")
        #expect(object["t"]?.contains("Tom & Jerry") == true)
        #expect(object["to"] == "support+billing@example.test")
        #expect(object["tag"] == "billing")
    }

    @Test func helpers() throws {
        let out = try Self.render(
            #"{"short": "{{truncate20(subject)}}", "literal": {{{json(subject)}}}, "html": "{{html(subject)}}", "md": "{{markdown(subject)}}", "up": "{{uppercased(tag)}}", "list": [{{#attachments}}"{{filename}}"{{^last()}},{{/last()}}{{/attachments}}]}"#,
            "attachments"
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect(object["short"] as? String == "Scans attached")
        #expect(object["literal"] as? String == "Scans attached")
        #expect(object["up"] as? String == "BILLING")
        #expect(object["list"] as? [String] == ["scan-001.pdf", "Übersicht Q4 📊.xlsx", "notes.txt"])
        let long = try Self.render(#"{"s": "{{truncate20(subject)}}"}"#, "long")
        let short = try #require((try JSONSerialization.jsonObject(with: Data(long.utf8)) as? [String: String])?["s"])
        #expect(short.count == 20 && short.hasSuffix(TextLimit.marker))
        let markup = try Self.render(#"{"h": "{{html(subject)}}", "m": "{{markdown(subject)}}"}"#)
        let escaped = try #require(try JSONSerialization.jsonObject(with: Data(markup.utf8)) as? [String: String])
        #expect(escaped["h"]?.hasPrefix("&lt;!channel&gt;") == true)
        #expect(escaped["m"]?.contains("\\[urgent\\]") == true)
    }

    @Test func textTemplatesAreNotEscaped() throws {
        #expect(
            try Self.render("Subject: {{subject}}", "plain", contentType: "text/plain") == "Subject: Lunch on Friday?"
        )
    }

    @Test func syntaxErrorsNameTheLine() {
        do {
            _ = try MessageTemplate(source: "{\n  \"a\": \"{{#attachments}}\"\n}")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("line"), "\(error)")
        }
    }

    @Test func invalidJSONOutputIsAnError() {
        #expect(throws: TemplateError.self) { try Self.render(#"{"t": {{{text}}} }"#) }
    }
}
