import MailCore
import MessageData
import Targets

/// A realistic test message: a reply with quoted text and a signature, plain and HTML parts, a
/// non-Latin name and an emoji in the subject, and a small PDF-like attachment. Used by
/// `lmtphook send-test` and to check templates when a configuration is loaded.
package enum SampleMessage {
    /// The message in RFC 5322 form with CRLF line endings.
    package static func raw(
        from: String = "alice@example.org",
        to recipients: [String] = ["support@example.test"],
        date: String = "Tue, 01 Dec 2026 12:00:00 +0000",
        messageID: String = "<sample-1@example.org>"
    ) -> [UInt8] {
        let boundary = "=_lmtphook_sample_7c1f"
        let alternative = "=_lmtphook_alt_93ab"
        let text = """
            Hello,

            the invoice for order #4711 is attached. Could you check the VAT line? Grüße aus Köln — 東京でも大丈夫です 👍

            Thanks,
            Alice

            On Mon, 30 Nov 2026 at 09:12, Support <support@example.test> wrote:
            > Please send us the invoice.
            -- 
            Alice Example · Example Org · +49 221 000000
            """
        let html =
            "<p>Hello,</p><p>the invoice for order #4711 is attached. Could you check the <b>VAT</b> line?</p><p>Thanks,<br>Alice</p>"
        let lines = [
            "From: =?UTF-8?Q?Al=C3=AFce_Example?= <\(from)>",
            "To: \(recipients.joined(separator: ", "))",
            "Subject: =?UTF-8?B?\(base64("Re: Invoice 4711 — please check 🧾"))?=",
            "Date: \(date)",
            "Message-ID: \(messageID)",
            "In-Reply-To: <ticket-4711@example.test>",
            "MIME-Version: 1.0",
            "Content-Type: multipart/mixed; boundary=\"\(boundary)\"",
            "",
            "--\(boundary)",
            "Content-Type: multipart/alternative; boundary=\"\(alternative)\"",
            "",
            "--\(alternative)",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
            "",
            wrap(base64(text)),
            "--\(alternative)",
            "Content-Type: text/html; charset=utf-8",
            "",
            html,
            "--\(alternative)--",
            "",
            "--\(boundary)",
            "Content-Type: application/pdf; name=\"invoice-4711.pdf\"",
            "Content-Disposition: attachment; filename=\"invoice-4711.pdf\"",
            "Content-Transfer-Encoding: base64",
            "",
            wrap(
                base64(
                    "%PDF-1.4\n% lmtphook sample attachment\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
                )
            ),
            "--\(boundary)--",
            "",
        ]
        return Array(lines.joined(separator: "\r\n").utf8)
    }

    /// What a format or template sees for the sample message.
    package static func renderInput(id: String = "SAMPLE0000000000000000000A") -> RenderInput {
        let raw = raw()
        let envelope = MailEnvelope(
            mailFrom: "alice@example.org",
            rcptTo: ["support+billing@example.test"],
            lhlo: "mx.example.test"
        )
        let receivedAt = UnixTime(milliseconds: 1_796_126_400_000)
        let rendered = MessagePayload.render(id: id, receivedAt: receivedAt, envelope: envelope, raw: raw)
        let summary = MailSummary(
            id: id,
            message: rendered.message,
            envelope: envelope,
            tags: ["billing"],
            route: "sample"
        )
        return RenderInput(
            summary: summary,
            message: rendered.message,
            envelope: envelope,
            payloadJSON: rendered.json,
            receivedAt: receivedAt
        )
    }

    private static func base64(_ text: String) -> String {
        var out: [UInt8] = []
        TransferDecoding.base64Encode(Array(text.utf8), into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func wrap(_ text: String) -> String {
        var lines: [Substring] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            lines.append(rest.prefix(76))
            rest = rest.dropFirst(76)
        }
        return lines.joined(separator: "\r\n")
    }
}
