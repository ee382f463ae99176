import Foundation
import MailCore
import Targets
import Testing

/// Each format's body has the shape its target documents, stays within the target's limits in
/// the target's own unit, and neutralises hostile markup.
@Suite("Target formats: shape, limits, escaping")
struct FormatShapeTests {
    static func object(_ format: TargetFormat, _ fixture: String) throws -> [String: Any] {
        let body = try format.render(FormatFixtures.input(fixture), options: FormatFixtures.options)
        return try #require(try FormatGoldenTests.decode(body) as? [String: Any])
    }

    static func utf16(_ value: Any?) -> Int { (value as? String)?.utf16.count ?? 0 }

    /// A truncated text is a prefix of whole graphemes of some source text, then the marker.
    static func isCleanTruncation(_ text: String) -> Bool {
        guard text.hasSuffix(TextLimit.marker) else { return true }
        let kept = String(text.dropLast(TextLimit.marker.count))
        // No dangling combining mark, ZWJ or variation selector at the cut.
        guard let last = kept.unicodeScalars.last else { return true }
        return last != "\u{200D}" && !(0xFE00...0xFE0F).contains(last.value)
            && !(0x1F3FB...0x1F3FF).contains(last.value)
    }

    @Test(arguments: FormatFixtures.names)
    func slack(_ fixture: String) throws {
        let body = try Self.object(.slack, fixture)
        let blocks = try #require(body["blocks"] as? [[String: Any]])
        #expect(blocks.count <= 50)
        #expect(body["text"] is String)
        var total = 0
        for block in blocks {
            let type = try #require(block["type"] as? String)
            #expect(["header", "context", "section"].contains(type))
            if type == "header" {
                let text = try #require((block["text"] as? [String: Any])?["text"] as? String)
                #expect(text.count <= SlackFormat.headerLimit)
            }
            if type == "section" {
                let text = try #require((block["text"] as? [String: Any])?["text"] as? String)
                #expect(text.count <= SlackFormat.sectionLimit)
                total += text.count
                #expect(Self.isCleanTruncation(text))
            }
        }
        #expect(total <= SlackFormat.bodyLimit + SlackFormat.sectionLimit)  // body sections + the attachment list
        let raw = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        #expect(!raw.contains("<!"), "no live Slack control sequence")
        #expect(!raw.contains("<http"), "no live Slack link")
        #expect(!raw.contains("<@"), "no live Slack mention")
    }

    @Test(arguments: FormatFixtures.names)
    func discord(_ fixture: String) throws {
        let body = try Self.object(.discord, fixture)
        #expect((body["allowed_mentions"] as? [String: Any])?["parse"] as? [Any] != nil)
        #expect(((body["allowed_mentions"] as? [String: Any])?["parse"] as? [Any])?.isEmpty == true)
        #expect(Self.utf16(body["username"]) <= 80)
        let embeds = try #require(body["embeds"] as? [[String: Any]])
        #expect((1...10).contains(embeds.count))
        let embed = embeds[0]
        #expect(Self.utf16(embed["title"]) <= DiscordFormat.titleLimit)
        #expect(Self.utf16(embed["description"]) <= DiscordFormat.descriptionLimit)
        let author = Self.utf16((embed["author"] as? [String: Any])?["name"])
        let footer = Self.utf16((embed["footer"] as? [String: Any])?["text"])
        let fields = (embed["fields"] as? [[String: Any]] ?? []).reduce(0) {
            $0 + Self.utf16($1["name"]) + Self.utf16($1["value"])
        }
        for field in embed["fields"] as? [[String: Any]] ?? [] {
            #expect(Self.utf16(field["value"]) <= DiscordFormat.fieldLimit)
        }
        #expect(
            Self.utf16(embed["title"]) + Self.utf16(embed["description"]) + author + footer + fields
                <= DiscordFormat.embedTotalLimit
        )
        #expect(Self.isCleanTruncation(embed["description"] as? String ?? ""))
        if fixture == "markup" {
            let description = try #require(embed["description"] as? String)
            #expect(!description.contains("@everyone"), "broken with a zero-width space")
            #expect(!description.contains("[https://bank.example](https://evil.example)"))
        }
    }

    @Test(arguments: FormatFixtures.names)
    func mattermostRocketChatZulip(_ fixture: String) throws {
        let mattermost = try #require(try Self.object(.mattermost, fixture)["text"] as? String)
        #expect(mattermost.unicodeScalars.count <= 16_383)
        let rocket = try #require(try Self.object(.rocketchat, fixture)["text"] as? String)
        #expect(rocket.count <= 5_000)
        let zulip = try Self.object(.zulip, fixture)
        #expect(zulip["type"] as? String == "stream")
        #expect(zulip["to"] as? String == "support")
        #expect((zulip["topic"] as? String)?.count ?? 99 <= 60)
        #expect((zulip["content"] as? String)?.utf8.count ?? 99_999 <= 10_000)
        for text in [mattermost, rocket, zulip["content"] as? String ?? ""] {
            #expect(Self.isCleanTruncation(text))
            if fixture == "markup" {
                for mention in ["@everyone", "@here", "@channel", "@all"] {
                    #expect(!text.contains(mention), "\(mention) must not notify")
                }
                #expect(!text.contains("[https://bank.example](https://evil.example)"))
            }
        }
    }

    @Test(arguments: FormatFixtures.names)
    func teams(_ fixture: String) throws {
        let body = try FormatGoldenTests.decode(
            try TargetFormat.teams.render(FormatFixtures.input(fixture), options: FormatOptions())
        )
        let bytes = try TargetFormat.teams.render(FormatFixtures.input(fixture), options: FormatOptions()).bytes
        #expect(bytes.count <= TeamsFormat.requestLimit)
        let message = try #require(body as? [String: Any])
        #expect(message["type"] as? String == "message")
        let attachment = try #require((message["attachments"] as? [[String: Any]])?.first)
        #expect(attachment["contentType"] as? String == "application/vnd.microsoft.card.adaptive")
        let card = try #require(attachment["content"] as? [String: Any])
        #expect(card["type"] as? String == "AdaptiveCard")
        #expect(card["version"] as? String == "1.4")
        #expect(
            (card["body"] as? [[String: Any]])?.allSatisfy {
                ["TextBlock", "FactSet"].contains($0["type"] as? String ?? "")
            } == true
        )
    }

    @Test(arguments: FormatFixtures.names)
    func notificationTargets(_ fixture: String) throws {
        let ntfy = try Self.object(.ntfy, fixture)
        #expect(ntfy["topic"] as? String == "mail")
        #expect((ntfy["message"] as? String)?.utf8.count ?? 99_999 <= 4_096)
        #expect(ntfy["priority"] as? Int == 4)
        #expect((ntfy["tags"] as? [String])?.contains("billing") == true)
        let gotify = try Self.object(.gotify, fixture)
        #expect(gotify["message"] is String && gotify["title"] is String)
        #expect((gotify["message"] as? String)?.count ?? 99_999 <= 16_384)
        #expect(gotify["priority"] as? Int == 4)
        let matrix = try Self.object(.matrix, fixture)
        #expect((matrix["text"] as? String)?.utf8.count ?? 99_999 <= 24_000)
        #expect(matrix["html"] is String)
        if fixture == "markup" {
            #expect(!(matrix["text"] as? String ?? "").contains("@room"))
            #expect(!(matrix["html"] as? String ?? "").contains("<b>c"), "mail text is escaped in html")
        }
    }

    @Test func chatFormatsShowSenderSubjectAndAttachments() throws {
        for format in FormatGoldenTests.chatFormats {
            let text = String(
                decoding: try format.render(FormatFixtures.input("attachments"), options: FormatFixtures.options).bytes,
                as: UTF8.self
            )
            let decoded = (text.removingPercentEncoding ?? text).replacingOccurrences(of: "+", with: " ")
            #expect(decoded.contains("carol@example.org"), "\(format): sender")
            #expect(decoded.contains("Scans attached"), "\(format): subject")
            #expect(
                decoded.contains("scan-001.pdf") && decoded.contains("175.8 KB"),
                "\(format): attachment name and size"
            )
        }
    }

    @Test func quotedReplyAndSignatureAreTrimmedInChat() throws {
        let input = RenderInput(
            summary: MailSummary(
                id: "X",
                message: ParsedMessage(
                    parsing: Array(
                        """
                        From: a@example.org\r
                        Subject: Re: hi\r
                        \r
                        Yes, works for me.\r
                        \r
                        On Mon, 30 Nov 2026 at 09:12, B <b@example.org> wrote:\r
                        > Does Friday work?\r
                        > -- \r
                        > B\r
                        -- \r
                        A, sent from my phone\r

                        """.utf8
                    )
                ),
                envelope: FormatFixtures.envelope
            ),
            message: ParsedMessage(parsing: []),
            envelope: FormatFixtures.envelope,
            payloadJSON: [],
            receivedAt: UnixTime(milliseconds: 0)
        )
        let slack = String(
            decoding: try TargetFormat.slack.render(input, options: FormatOptions()).bytes,
            as: UTF8.self
        )
        #expect(slack.contains("Yes, works for me."))
        #expect(!slack.contains("Does Friday work"))
        #expect(!slack.contains("sent from my phone"))
    }
}
