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
