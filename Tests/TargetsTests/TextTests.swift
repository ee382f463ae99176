import MailCore
import Targets
import Testing

@Suite("Text limits and readable text")
struct TextTests {
    @Test(arguments: [TextLimit.Unit.characters, .scalars, .utf16, .utf8Bytes])
    func truncationNeverSplitsGraphemes(_ unit: TextLimit.Unit) {
        let text = String(repeating: "ab 👩‍👩‍👧‍👦 e\u{301} 🇩🇪 ", count: 50)
        for limit in 1...120 {
            let limited = TextLimit(limit, unit)
            let result = limited.truncate(text)
            #expect(limited.length(of: result) <= limit, "limit \(limit) \(unit)")
            let kept = result.hasSuffix(TextLimit.marker) ? String(result.dropLast(TextLimit.marker.count)) : result
            #expect(text.hasPrefix(kept), "a prefix of whole graphemes at \(limit) \(unit)")
            #expect(Array(text).starts(with: Array(kept)))
        }
    }

    @Test func shortTextIsUntouchedAndLongTextIsMarked() {
        #expect(TextLimit(10, .characters).truncate("hello") == "hello")
        #expect(TextLimit(20, .characters).truncate("hello world, this is long") == "hello w… [truncated]")
        #expect(
            TextLimit(3, .characters).truncate("hello world") == "hel",
            "no room for the marker: whole graphemes only"
        )
    }

    @Test func unitsCountDifferently() {
        let family = "👩‍👩‍👧‍👦"
        #expect(TextLimit(0, .characters).length(of: family) == 1)
        #expect(TextLimit(0, .scalars).length(of: family) == 7)
        #expect(TextLimit(0, .utf16).length(of: family) == 11)
        #expect(TextLimit(0, .utf8Bytes).length(of: family) == 25)
    }

    @Test func escapedLengthCounts() {
        // Slack counts "&amp;" as five characters: truncation measures the escaped text.
        let text = String(repeating: "&", count: 100)
        let cut = TextLimit.truncate(text, toFit: 50, marker: "", measure: ChatMarkup.slackLength)
        #expect(ChatMarkup.slack(cut).count <= 50)
        #expect(cut.count == 10)
    }

    @Test func splitPrefersLineBreaks() {
        let pieces = TextLimit.split("aaaa bbbb\ncccc dddd", pieceLimit: 12, measure: { _ in 1 })
        #expect(pieces == ["aaaa bbbb\n", "cccc dddd"])
        #expect(
            TextLimit.split(String(repeating: "x", count: 25), pieceLimit: 10, measure: { _ in 1 }).map(\.count) == [
                10, 10, 5,
            ]
        )
    }

    @Test func readableTextDropsQuoteAttributionAndSignature() {
        let text = "Sounds good.\n\nSee you,\nA\n\nOn Mon, 30 Nov 2026, B <b@x.org> wrote:\n> Shall we?\n>\n> B\n"
        #expect(ReadableText.extract(text) == "Sounds good.\n\nSee you,\nA")
        #expect(ReadableText.extract("Hi\r\n-- \r\nSig line\r\n") == "Hi")
        #expect(ReadableText.extract("Answer\n\n-----Original Message-----\nFrom: x\nold") == "Answer")
        #expect(ReadableText.extract("Answer\n\n________________________________\nFrom: x\nold") == "Answer")
        #expect(
            ReadableText.extract("Le lun. 30 nov. 2026, B a écrit :\n> old")
                == "Le lun. 30 nov. 2026, B a écrit :\n> old",
            "nothing new: keep everything"
        )
    }

    static let signatureCases: [(text: String, reply: String, signature: String?)] = [
        ("Hi\n-- \nBob\nAcme Ltd\n", "Hi", "Bob\nAcme Ltd"),
        (
            "Thanks!\n\n-- \nBob\n\nOn Mon, 30 Nov 2026, A <a@x.org> wrote:\n> old\n", "Thanks!", "Bob"
        ),
        ("Answer\n-- \nSig\n\n-----Original Message-----\nFrom: x\nold", "Answer", "Sig"),
        (
            "No signature here\n--\nnot a delimiter without the space",
            "No signature here\n--\nnot a delimiter without the space", nil
        ),
        ("Only a delimiter\n-- \n\n", "Only a delimiter", nil),
        ("Line\r\n-- \r\nS\r\n\r\n\r\nS2\r\n", "Line", "S\n\nS2"),
    ]

    @Test(arguments: signatureCases)
    func signatureIsSplitFromTheReply(_ entry: (text: String, reply: String, signature: String?)) {
        let split = ReadableText.split(entry.text)
        #expect(split.reply == entry.reply)
        #expect(split.signature == entry.signature)
        #expect(ReadableText.extract(entry.text) == entry.reply)
    }

    @Test func interleavedQuotingIsKept() {
        let text = "> question one\nanswer one\n> question two\nanswer two"
        #expect(ReadableText.extract(text) == text)
    }

    @Test func mentionsAndLinksAreNeutralised() {
        #expect(
            ChatMarkup.slack("<!channel> & <https://evil|bank>") == "&lt;!channel&gt; &amp; &lt;https://evil|bank&gt;"
        )
        let markdown = ChatMarkup.markdown("@everyone [bank](https://evil) mail@example.org")
        #expect(markdown == "@\u{200B}everyone \\[bank\\](https://evil) mail@example.org", "addresses keep their @")
        #expect(ChatMarkup.neutraliseLinks("[bank](https://evil)") == "[bank]\u{200B}(https://evil)")
        #expect(ChatMarkup.matrixPlain("hi @room") == "hi @\u{200B}room")
    }

    @Test func zulipTopicDropsReplyPrefixes() {
        #expect(ZulipFormat.threadTopic("Re: RE: Fwd: Invoice 4711") == "Invoice 4711")
        #expect(ZulipFormat.threadTopic("AW: WG: Angebot") == "Angebot")
        #expect(ZulipFormat.threadTopic("Re:") == "(no subject)")
        #expect(ZulipFormat.threadTopic("Note: read this") == "Note: read this")
    }
}
