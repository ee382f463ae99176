/// The `esmtp-keyword[=esmtp-value]` list after a MAIL or RCPT path (RFC 5321 §4.1.2).
/// Keywords are upper-cased; values are kept as sent.
struct ESMTPParameters: Equatable {
    enum Failure: Error, Equatable {
        /// A parameter is not of the `keyword[=value]` form, or a keyword repeats.
        case syntax
    }

    private(set) var entries: [(keyword: String, value: String?)] = []

    static func == (lhs: ESMTPParameters, rhs: ESMTPParameters) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.keyword == $1.keyword && $0.value == $1.value }
    }

    init() {}

    init(parsing bytes: ArraySlice<UInt8>) throws(Failure) {
        for item in bytes.split(separator: UInt8(ascii: " ")) {
            let keywordBytes: ArraySlice<UInt8>
            var value: String? = nil
            if let equals = item.firstIndex(of: UInt8(ascii: "=")) {
                keywordBytes = item[item.startIndex..<equals]
                let valueBytes = item[(equals + 1)...]
                guard !valueBytes.isEmpty,
                    valueBytes.allSatisfy({ ($0 >= 33 && $0 <= 126 && $0 != UInt8(ascii: "=")) || $0 >= 0x80 })
                else { throw .syntax }
                value = String(decoding: valueBytes, as: UTF8.self)
            } else {
                keywordBytes = item
            }
            guard let first = keywordBytes.first, LMTPPathParser.isAlphaNumeric(first),
                keywordBytes.allSatisfy({ LMTPPathParser.isAlphaNumeric($0) || $0 == UInt8(ascii: "-") })
            else { throw .syntax }
            let keyword = String(decoding: keywordBytes, as: UTF8.self).uppercased()
            if entries.contains(where: { $0.keyword == keyword }) { throw .syntax }
            entries.append((keyword, value))
        }
    }
}
