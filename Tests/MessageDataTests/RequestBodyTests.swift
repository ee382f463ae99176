import Foundation
import MessageData
import Testing

@Suite("Message bodies and streamed request bodies")
struct RequestBodyTests {
    private func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "messagedata-\(UUID().uuidString)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test(
        "base64 streamed from a file is the same as Foundation's, at every length around the chunk size",
        arguments: [0, 1, 2, 3, 4, 5, 196_607, 196_608, 196_609, 196_610, 600_001]
    )
    func base64MatchesFoundation(length: Int) throws {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        let path = try temporaryFile(bytes)
        defer { unlink(path) }
        let file = try MessageFile(opening: path)
        let body = RequestBody([.bytes(Array("{\"raw\":\"".utf8)), .base64(.file(file)), .bytes(Array("\"}".utf8))])
        let expected = Array("{\"raw\":\"\(Data(bytes).base64EncodedString())\"}".utf8)
        #expect(body.count == expected.count)
        #expect(try body.contents() == expected)
        // Small reads (as curl may ask) give the same bytes, and a rewind starts over.
        let reader = RequestBodyReader(body)
        var collected: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        defer { buffer.deallocate() }
        _ = try reader.read(into: buffer)
        reader.rewind()
        while case let count = try reader.read(into: buffer), count > 0 {
            collected += buffer[..<count]
        }
        #expect(collected == expected)
        #expect(try RequestBody([.base64(.bytes(bytes))]).contents() == Array(Data(bytes).base64EncodedString().utf8))
    }

    /// Encoded bodies as mail carries them, good and bad: line-wrapped base64 with CRLF and LF,
    /// padding mid-stream, noise, a dangling quantum; quoted-printable with soft breaks, trailing
    /// white space, malformed escapes, long lines.
    static func encodedSamples() -> [(TransferEncoding, [UInt8])] {
        var samples: [(TransferEncoding, [UInt8])] = []
        for length in [0, 1, 5, 3_000, 200_000, 700_003] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: ($0 &+ length) &* 2_654_435_761 >> 11) }
            var encoded = Array(Data(bytes).base64EncodedString(options: [.lineLength76Characters]).utf8)
            if length % 2 == 1 { encoded = encoded.map { $0 == 0x0D ? 0x20 : $0 } }
            samples.append((.base64, encoded))
        }
        samples.append((.base64, Array("QUJD\r\nRA==RUZH\r\n!!SGk=\r\nQ\r\n".utf8)))
        samples.append((.base64, Array("QUJDRA".utf8)))
        var qp: [UInt8] = []
        let pieces = ["caf=C3=A9 ", "=\r\n", "trailing  \t\r\n", "=3D=3d", "=ZZ bad ", "=\n", "\n", "x"]
        for index in 0..<60_000 {
            qp += Array(pieces[(index &* 2_654_435_761 >> 13) % 8].utf8) + (index % 97 == 0 ? [0x0A] : [])
        }
        samples.append((.quotedPrintable, qp))
        samples.append(
            (.quotedPrintable, Array(String(repeating: "a", count: 150_000).utf8) + Array("=\r\n  \n=".utf8))
        )
        samples.append((.quotedPrintable, Array("end soft break=  ".utf8)))
        samples.append((.identity, (0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 31) }))
        return samples
    }

    static func wholeDecode(_ encoding: TransferEncoding, _ bytes: [UInt8]) -> [UInt8] {
        var malformed = false
        switch encoding {
        case .identity: return bytes
        case .base64: return TransferDecoding.base64(bytes[...], malformed: &malformed)
        case .quotedPrintable: return TransferDecoding.quotedPrintable(bytes[...])
        }
    }

    @Test("an attachment decoded while it is read (memory or file, any read size) is what the whole decode gives")
    func streamedDecodingMatchesWholeDecoding() throws {
        for (encoding, encoded) in Self.encodedSamples() {
            let prefix = Array("Content-Type: x\r\n\r\n".utf8)
            let message = prefix + encoded + Array("\r\n--end--\r\n".utf8)
            let expected = Self.wholeDecode(encoding, encoded)
            let range = prefix.count..<(prefix.count + encoded.count)
            let path = try temporaryFile(message)
            defer { unlink(path) }
            for body in [MessageBody.bytes(message), .file(try MessageFile(opening: path))] {
                let content = EncodedContent(body: body, range: range, encoding: encoding, decodedCount: expected.count)
                #expect(try content.contents() == expected, "\(encoding) \(encoded.count)")
                let both = RequestBody([.bytes([1]), .decoded(content), .decodedBase64(content)])
                #expect(both.count == 1 + expected.count + Base64.encodedCount(expected.count))
                // Read in odd sizes, as curl may ask.
                let reader = RequestBodyReader(both)
                var collected: [UInt8] = []
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 777, alignment: 1)
                defer { buffer.deallocate() }
                while case let count = try reader.read(into: buffer), count > 0 { collected += buffer[..<count] }
                #expect(collected == [1] + expected + Array(Data(expected).base64EncodedString().utf8))
            }
        }
    }

    @Test("a part whose decoded length is not the announced one fails the read instead of sending a wrong body")
    func announcedLengthIsChecked() throws {
        let encoded = Array("QUJD".utf8)
        for wrong in [2, 4] {
            let content = EncodedContent(body: .bytes(encoded), range: 0..<4, encoding: .base64, decodedCount: wrong)
            #expect(throws: MessageFileError.self) { try RequestBody([.decoded(content)]).contents() }
        }
    }

    @Test("a file body is read whole or in chunks; it stays readable after its name is removed or linked")
    func fileBody() throws {
        let bytes = (0..<700_000).map { UInt8(truncatingIfNeeded: $0) }
        let path = try temporaryFile(bytes)
        let file = try MessageFile(opening: path)
        let linked = path + ".link"
        try file.link(to: linked)
        unlink(path)
        #expect(try file.readAll() == bytes)
        var chunks = 0
        var collected: [UInt8] = []
        try MessageBody.file(file).forEachChunk {
            chunks += 1
            collected += $0
        }
        #expect(collected == bytes && chunks == 3)
        // Linked again after the first name is gone: through the open descriptor.
        try file.link(to: path + ".second")
        #expect(try MessageFile(opening: path + ".second").readAll() == bytes)
        #expect(try MessageFile(opening: linked).readAll() == bytes)
        try file.sync()
        unlink(linked)
        unlink(path + ".second")
        #expect(throws: MessageFileError.self) { try MessageFile(opening: path) }
    }
}
