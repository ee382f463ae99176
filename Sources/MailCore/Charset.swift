#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Text in a declared charset → Swift `String`, never failing: invalid or unmappable bytes become
/// U+FFFD and are counted. UTF-8 and ASCII are decoded natively; everything else goes through glibc
/// iconv after the label is normalised (WHATWG-style aliases: `latin1`/`us-ascii` → windows-1252,
/// `gb2312`/`gbk` → GB18030, `ks_c_5601-1987` → CP949, `shift_jis` → CP932, …).
package enum Charset {
    /// The result of decoding.
    package struct Decoded: Sendable, Hashable {
        package var text: String
        /// How many bytes or sequences were replaced by U+FFFD.
        package var replacements: Int
        /// `true` when the charset label was not recognised (the bytes were decoded as UTF-8 or windows-1252).
        package var unknownCharset: Bool
    }

    /// Decodes `bytes` declared as `label` (`nil` or empty: UTF-8 with a windows-1252 fallback).
    package static func decode(_ bytes: ArraySlice<UInt8>, label: String?) -> Decoded {
        if bytes.allSatisfy({ $0 < 0x80 }) {
            // Pure ASCII decodes the same in every ASCII-compatible charset; only the 7-bit
            // stateful/wide ones need iconv.
            let name = label.flatMap(iconvName(for:))
            if name == nil || !asciiIncompatible.contains(name!) {
                return Decoded(
                    text: String(decoding: bytes, as: UTF8.self),
                    replacements: 0,
                    unknownCharset: label != nil && !label!.isEmpty && name == nil
                )
            }
        }
        guard let label, !label.isEmpty else { return utf8OrWindows1252(bytes) }
        // 8-bit bytes cannot be ASCII: a "us-ascii" label on valid UTF-8 is a mislabel.
        if asciiLabels.contains(label.lowercased().trimmingWhitespace()) { return utf8OrWindows1252(bytes) }
        guard let name = iconvName(for: label) else {
            var result = utf8OrWindows1252(bytes)
            result.unknownCharset = true
            return result
        }
        if name == "UTF-8" { return utf8(bytes) }
        if name == "ISO-2022-JP-2", let shiftJIS = ISO2022JP.shiftJIS(bytes),
            let converted = iconv(shiftJIS[...], from: "CP932")
        {
            return converted  // with the NEC and IBM extensions (①, №, …) that real Japanese mail uses
        }
        if let converted = iconv(bytes, from: name) { return converted }
        var result = utf8OrWindows1252(bytes)
        result.unknownCharset = true
        return result
    }

    package static func decode(_ bytes: [UInt8], label: String?) -> Decoded { decode(bytes[...], label: label) }

    /// Valid UTF-8 as is; otherwise windows-1252 (what undeclared 8-bit mail most often is).
    package static func utf8OrWindows1252(_ bytes: ArraySlice<UInt8>) -> Decoded {
        if let text = String(validating: bytes, as: UTF8.self) {
            return Decoded(text: text, replacements: 0, unknownCharset: false)
        }
        return iconv(bytes, from: "CP1252") ?? utf8(bytes)
    }

    /// UTF-8 with invalid sequences replaced and counted.
    package static func utf8(_ bytes: ArraySlice<UInt8>) -> Decoded {
        if let text = String(validating: bytes, as: UTF8.self) {
            return Decoded(text: text, replacements: 0, unknownCharset: false)
        }
        var scalars = String.UnicodeScalarView()
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var replacements = 0
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .emptyInput: break loop
            case .error:
                scalars.append("\u{FFFD}")
                replacements += 1
            }
        }
        return Decoded(text: String(scalars), replacements: replacements, unknownCharset: false)
    }

    private static let asciiLabels: Set<String> = [
        "us-ascii", "ascii", "ansi_x3.4-1968", "us", "iso646-us", "\"us-ascii\"",
    ]

    private static let asciiIncompatible: Set<String> = [
        "UTF-16", "UTF-16LE", "UTF-16BE", "UTF-32", "UTF-32LE", "UTF-32BE", "UTF-7", "ISO-2022-JP-2", "ISO-2022-KR",
        "ISO-2022-CN", "HZ",
    ]

    private static let aliases: [String: String] = [
        "utf-8": "UTF-8", "utf8": "UTF-8", "unicode-1-1-utf-8": "UTF-8", "x-unicode20utf8": "UTF-8",
        "us-ascii": "CP1252", "ascii": "CP1252", "ansi_x3.4-1968": "CP1252", "iso-8859-1": "CP1252",
        "iso8859-1": "CP1252",
        "iso_8859-1": "CP1252", "latin1": "CP1252", "latin-1": "CP1252", "l1": "CP1252", "cp819": "CP1252",
        "ibm819": "CP1252",
        "windows-1252": "CP1252", "cp1252": "CP1252", "x-cp1252": "CP1252", "iso-ir-100": "CP1252",
        "csisolatin1": "CP1252",
        "gb2312": "GB18030", "gbk": "GB18030", "x-gbk": "GB18030", "cp936": "GB18030", "gb18030": "GB18030",
        "chinese": "GB18030",
        "euc-cn": "GB18030", "csgb2312": "GB18030", "gb_2312-80": "GB18030", "windows-936": "GB18030",
        "ks_c_5601-1987": "CP949", "ks_c_5601": "CP949", "euc-kr": "CP949", "cp949": "CP949", "windows-949": "CP949",
        "ksc5601": "CP949",
        "shift_jis": "CP932", "shift-jis": "CP932", "x-sjis": "CP932", "sjis": "CP932", "ms_kanji": "CP932",
        "csshiftjis": "CP932",
        "windows-31j": "CP932", "cp932": "CP932",
        "iso-2022-jp": "ISO-2022-JP-2", "csiso2022jp": "ISO-2022-JP-2", "iso-2022-jp-2": "ISO-2022-JP-2",
        "euc-jp": "EUC-JP", "x-euc-jp": "EUC-JP", "cseucpkdfmtjapanese": "EUC-JP",
        "big5": "BIG5-HKSCS", "big5-hkscs": "BIG5-HKSCS", "cn-big5": "BIG5-HKSCS", "x-x-big5": "BIG5-HKSCS",
        "csbig5": "BIG5-HKSCS",
        "iso-8859-8-i": "ISO-8859-8", "iso-8859-6-i": "ISO-8859-6", "iso-8859-6-e": "ISO-8859-6",
        "iso-8859-8-e": "ISO-8859-8",
        "koi8-r": "KOI8-R", "koi8r": "KOI8-R", "koi8-u": "KOI8-U", "koi8-ru": "KOI8-RU",
        "utf-7": "UTF-7", "unicode-1-1-utf-7": "UTF-7", "x-unicode20utf7": "UTF-7",
        "tis-620": "TIS-620", "windows-874": "CP874", "dos-874": "CP874",
        "utf-16": "UTF-16", "utf-16le": "UTF-16LE", "utf-16be": "UTF-16BE", "utf-32": "UTF-32", "utf-32le": "UTF-32LE",
        "utf-32be": "UTF-32BE",
        "macintosh": "MACINTOSH", "mac": "MACINTOSH", "x-mac-roman": "MACINTOSH",
    ]

    /// The iconv name for a MIME charset label, or `nil` when iconv does not know it.
    package static func iconvName(for label: String) -> String? {
        var cleaned = label.lowercased()
        cleaned.removeAll { $0 == "\"" || $0 == "'" || $0 == " " || $0 == "\t" }
        if let star = cleaned.firstIndex(of: "*") { cleaned = String(cleaned[..<star]) }  // RFC 2231 language suffix
        if cleaned.isEmpty { return nil }
        if let alias = aliases[cleaned] { return alias }
        var name = cleaned.uppercased()
        if name.hasPrefix("WINDOWS-") { name = "CP" + name.dropFirst("WINDOWS-".count) }
        if name.hasPrefix("X-") { name = String(name.dropFirst(2)) }
        guard name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return knownToIconv(name) ? name : nil
    }

    private static func knownToIconv(_ name: String) -> Bool {
        let descriptor = iconv_open("UTF-8", name)
        if descriptor == iconv_t(bitPattern: -1) { return false }
        iconv_close(descriptor)
        return true
    }

    /// Converts with iconv, replacing undecodable bytes; `nil` when iconv does not know the charset.
    static func iconv(_ bytes: ArraySlice<UInt8>, from name: String) -> Decoded? {
        let descriptor = iconv_open("UTF-8", name)
        if descriptor == iconv_t(bitPattern: -1) { return nil }
        defer { iconv_close(descriptor) }
        var output = [UInt8](repeating: 0, count: bytes.count * 4 + 16)
        var produced = 0
        var replacements = 0
        var input = Array(bytes)
        input.withUnsafeMutableBufferPointer { inBuffer in
            var inPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(inBuffer.baseAddress).map {
                $0.assumingMemoryBound(to: CChar.self)
            }
            var inLeft = inBuffer.count
            loop: while true {
                if output.count - produced < 16 { output += [UInt8](repeating: 0, count: output.count) }
                let flushing = inLeft == 0
                let outCapacity = output.count - produced
                var outLeft = outCapacity
                let result: Int = output.withUnsafeMutableBufferPointer { outBuffer in
                    var outPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(
                        outBuffer.baseAddress! + produced
                    ).assumingMemoryBound(to: CChar.self)
                    // shift state reset
                    if flushing { return Glibc.iconv(descriptor, nil, nil, &outPointer, &outLeft) }
                    return Glibc.iconv(descriptor, &inPointer, &inLeft, &outPointer, &outLeft)
                }
                produced += outCapacity - outLeft
                if result != -1 {
                    if flushing { break loop }
                    continue
                }
                let error = errno
                if error == E2BIG {
                    output += [UInt8](repeating: 0, count: output.count)
                } else if (error == EILSEQ || error == EINVAL) && inLeft > 0 {
                    // An undecodable or truncated sequence: U+FFFD for one byte, then go on after it.
                    if output.count - produced < 3 { output += [UInt8](repeating: 0, count: output.count) }
                    output[produced] = 0xEF
                    output[produced + 1] = 0xBF
                    output[produced + 2] = 0xBD
                    produced += 3
                    replacements += 1
                    inPointer = inPointer.map { $0 + 1 }
                    inLeft -= 1
                } else {
                    break loop
                }
            }
        }
        let text = utf8(output[..<produced])
        return Decoded(text: text.text, replacements: replacements + text.replacements, unknownCharset: false)
    }
}

/// ISO-2022-JP as written by real mailers: JIS X 0208 (plus the NEC and IBM extension rows of
/// CP932) between `ESC $ B`/`ESC $ @` and `ESC ( B`/`ESC ( J`, half-width katakana after `ESC ( I`.
/// Converted to Shift_JIS so CP932 can decode it; `nil` for other escape sequences (ISO-2022-JP-2).
enum ISO2022JP {
    static func shiftJIS(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        enum Mode { case ascii, kanji, kana }
        var mode = Mode.ascii
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == 0x1B {
                guard index + 2 < bytes.endIndex else { return nil }
                switch (bytes[index + 1], bytes[index + 2]) {
                case (UInt8(ascii: "$"), UInt8(ascii: "B")), (UInt8(ascii: "$"), UInt8(ascii: "@")): mode = .kanji
                case (UInt8(ascii: "("), UInt8(ascii: "B")), (UInt8(ascii: "("), UInt8(ascii: "J")): mode = .ascii
                case (UInt8(ascii: "("), UInt8(ascii: "I")): mode = .kana
                default: return nil
                }
                index += 3
                continue
            }
            if byte == 0x0A || byte == 0x0D {
                mode = .ascii
                output.append(byte)
                index += 1
                continue
            }
            switch mode {
            case .ascii:
                output.append(byte)
                index += 1
            case .kana:
                output.append(byte >= 0x21 && byte <= 0x5F ? byte + 0x80 : byte)
                index += 1
            case .kanji:
                guard index + 1 < bytes.endIndex else {
                    output.append(byte)
                    index += 1
                    continue
                }
                let first = Int(byte)
                let second = Int(bytes[index + 1])
                guard (0x21...0x7E).contains(first), (0x21...0x7E).contains(second) else {
                    output.append(byte)
                    index += 1
                    continue
                }
                let lead = ((first + 1) >> 1) + (first <= 0x5E ? 0x70 : 0xB0)
                let trail = first & 1 == 1 ? second + (second >= 0x60 ? 0x20 : 0x1F) : second + 0x7E
                output.append(UInt8(lead))
                output.append(UInt8(trail))
                index += 2
            }
        }
        return output
    }
}
