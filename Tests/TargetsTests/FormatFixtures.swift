import Foundation
import MailCore
import MessageData
import Targets

/// The five mails every format is checked against: plain, long (past every limit), hostile
/// markup, non-Latin text with emoji, and attachments.
enum FormatFixtures {
    static let names = ["plain", "long", "markup", "nonlatin", "attachments"]

    static func raw(_ name: String) -> [UInt8] {
        switch name {
        case "plain":
            return message(
                from: "Bob Builder <bob@example.org>",
                subject: "Lunch on Friday?",
                text: """
                    Hi team,

                    shall we have lunch on Friday at 12:30? The usual place.

                    Bob
                    """
            )
        case "long":
            // A subject past every subject limit, and a body past every body limit, with
            // multi-scalar graphemes everywhere so that a cut can land inside one.
            let subject = String(repeating: "Quarterly report 👩‍👩‍👧‍👦 e\u{301}té ", count: 20)
            var paragraphs: [String] = []
            for index in 0..<900 {
                paragraphs.append(
                    "Paragraph \(index): the quick brown fox 🦊 jumps over the lazy dog 🐶; naïve café — 👍🏽 & <ok> \(String(repeating: "x", count: index % 40))"
                )
            }
            return message(
                from: "Reporter <reports@example.org>",
                subject: subject,
                text: paragraphs.joined(separator: "\n\n")
            )
        case "markup":
            return message(
                from: "\"<!channel> @everyone\" <attacker@example.org>",
                subject: "<!channel> @everyone [urgent](https://evil.example) <@U024BE7LH>",
                text: """
                    @everyone @here @channel @all @room please log in:
                    <https://evil.example|https://bank.example>
                    [https://bank.example](https://evil.example)
                    <!here> <!subteam^S123> <@U024BE7LH> <#C024BE7LR>
                    **bold** _italic_ ~strike~ `code` > quote | pipe # heading
                    Tom & Jerry &amp; friends; a<b>c; mail me at user@example.org
                    """
            )
        case "nonlatin":
            return message(
                from: "Zoë Ünïcødé <zoe@example.org>",
                subject: "Привет, 世界! مرحبا 🎉👨‍👩‍👧",
                text: """
                    Здравствуйте! 你好，世界。 こんにちは。 안녕하세요. नमस्ते। שלום. مرحبا بالعالم.

                    Emoji: 👩🏽‍💻 🏳️‍🌈 🇩🇪 ❤️‍🔥 1️⃣ — combining: a\u{0301}\u{0323} ñ Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǒ̓ͣ
                    """
            )
        case "attachments":
            return multipart(
                from: "Carol <carol@example.org>",
                subject: "Scans attached",
                text: "Here are the scans you asked for.\n\nCarol",
                attachments: [
                    ("scan-001.pdf", "application/pdf", Array(repeating: 0x25, count: 180_000)),
                    (
                        "Übersicht Q4 📊.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        Array(repeating: 0x41, count: 2_345)
                    ),
                    ("notes.txt", "text/plain", Array("a few notes\n".utf8)),
                ]
            )
        default:
            fatalError("no fixture \(name)")
        }
    }

    static let envelope = MailEnvelope(
        mailFrom: "sender@example.org",
        rcptTo: ["support+billing@example.test"],
        lhlo: "mx.example.test"
    )

    static func input(_ name: String) -> RenderInput {
        let raw = raw(name)
        let id = "01JTESTFIXTURE0000000000\(names.firstIndex(of: name) ?? 0)"
        let receivedAt = UnixTime(milliseconds: 1_796_126_400_000)
        let rendered = MessagePayload.render(
            id: id,
            receivedAt: receivedAt,
            envelope: envelope,
            raw: raw,
            options: PayloadOptions(attachments: .inline(maxBytes: 4_096), includeRaw: false)
        )
        let summary = MailSummary(
            id: id,
            message: rendered.message,
            envelope: envelope,
            tags: ["billing"],
            route: "support"
        )
        return RenderInput(
            summary: summary,
            message: rendered.message,
            envelope: envelope,
            payloadJSON: rendered.json,
            receivedAt: receivedAt
        )
    }

    static let options = FormatOptions(
        username: "Mail",
        channel: "town-square",
        stream: "support",
        topic: "mail",
        priority: 4
    )

    private static func header(_ text: String) -> String {
        text.unicodeScalars.allSatisfy(\.isASCII) ? text : "=?UTF-8?B?\(base64(Array(text.utf8)))?="
    }

    private static func fromHeader(_ text: String) -> String {
        guard let open = text.lastIndex(of: "<") else { return text }
        let name = text[..<open].trimmingCharacters(in: .whitespaces)
        return (name.hasPrefix("\"") ? name : header(name)) + " " + text[open...]
    }

    private static func base64(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        TransferDecoding.base64Encode(bytes, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func message(from: String, subject: String, text: String) -> [UInt8] {
        let lines = [
            "From: \(fromHeader(from))", "To: support+billing@example.test", "Subject: \(header(subject))",
            "Date: Tue, 01 Dec 2026 12:00:00 +0000", "Message-ID: <fixture@example.org>", "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64", "",
            base64(Array(text.utf8)), "",
        ]
        return Array(lines.joined(separator: "\r\n").utf8)
    }

    private static func multipart(
        from: String,
        subject: String,
        text: String,
        attachments: [(String, String, [UInt8])]
    ) -> [UInt8] {
        var lines = [
            "From: \(fromHeader(from))", "To: support+billing@example.test", "Subject: \(header(subject))",
            "Date: Tue, 01 Dec 2026 12:00:00 +0000", "Message-ID: <fixture@example.org>", "MIME-Version: 1.0",
            "Content-Type: multipart/mixed; boundary=\"b1\"", "", "--b1", "Content-Type: text/plain; charset=utf-8", "",
            text,
        ]
        for (name, type, content) in attachments {
            lines += [
                "--b1", "Content-Type: \(type)", "Content-Disposition: attachment; filename=\"\(header(name))\"",
                "Content-Transfer-Encoding: base64", "", base64(content),
            ]
        }
        lines += ["--b1--", ""]
        return Array(lines.joined(separator: "\r\n").utf8)
    }
}
