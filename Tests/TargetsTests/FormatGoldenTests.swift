import Foundation
import MailCore
import Targets
import Testing

/// Every format and every shipped template, rendered for every fixture, against reviewed golden
/// bodies. `UPDATE_GOLDEN=1 swift test --filter FormatGoldenTests` rewrites them (review the diff!).
@Suite("Target formats: golden bodies")
struct FormatGoldenTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let templates = ["zammad", "jira", "github", "gitlab", "freshdesk"]
    static let chatFormats = TargetFormat.allCases.filter { $0 != .template && $0 != .json }

    static func templateURL(_ name: String) -> URL {
        directory.appendingPathComponent("../../deploy/templates/\(name).json.mustache").standardized
    }

    static func template(_ name: String) throws -> MessageTemplate {
        try MessageTemplate(source: String(contentsOf: templateURL(name), encoding: .utf8))
    }

    /// The rendered body as a JSON value (form bodies as an object of their fields).
    static func decode(_ body: RenderedBody) throws -> Any {
        if body.contentType == "application/x-www-form-urlencoded" {
            var fields: [String: String] = [:]
            for pair in String(decoding: body.bytes, as: UTF8.self).split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map {
                    $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
                }
                fields[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            return fields
        }
        return try JSONSerialization.jsonObject(with: Data(body.bytes))
    }

    static func check(_ body: RenderedBody, golden name: String) throws {
        let actual = try decode(body)
        let url = directory.appendingPathComponent("Golden/\(name).json")
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            let pretty = try JSONSerialization.data(
                withJSONObject: actual,
                options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            )
            try (pretty + Data("\n".utf8)).write(to: url)
        }
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        #expect(
            NSDictionary(dictionary: ["v": actual]) == NSDictionary(dictionary: ["v": golden]),
            "\(name): \(String(decoding: body.bytes, as: UTF8.self).prefix(2000))"
        )
    }

    @Test(arguments: chatFormats, FormatFixtures.names)
    func chatFormat(_ format: TargetFormat, _ fixture: String) throws {
        let body = try format.render(FormatFixtures.input(fixture), options: FormatFixtures.options)
        try Self.check(body, golden: "\(format.rawValue)-\(fixture)")
    }

    @Test(arguments: templates, FormatFixtures.names)
    func ticketTemplate(_ name: String, _ fixture: String) throws {
        let body = try Self.template(name).render(FormatFixtures.input(fixture))
        #expect(body.contentType == "application/json")
        try Self.check(body, golden: "template-\(name)-\(fixture)")
    }

    @Test(arguments: FormatFixtures.names)
    func jsonFormatIsPayloadV1(_ fixture: String) throws {
        let input = FormatFixtures.input(fixture)
        let body = try TargetFormat.json.render(input, options: FormatOptions())
        #expect(body.bytes == input.payloadJSON)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.bytes)) as? [String: Any])
        #expect(object["schema"] as? Int == 1)
    }
}
