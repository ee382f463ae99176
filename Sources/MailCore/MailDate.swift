/// The `Date` header (RFC 5322 §3.3 with the obsolete forms of §4.3) → RFC 3339 UTC.
/// Accepts a missing day name, two- and three-digit years, missing seconds, named and military
/// zones, comments, asctime order (`Mon Nov 28 10:00:00 2026`) and extra white space.
package enum MailDate {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let zones: [String: Int] = [
        "ut": 0, "utc": 0, "gmt": 0, "z": 0, "est": -300, "edt": -240, "cst": -360, "cdt": -300, "mst": -420,
        "mdt": -360,
        "pst": -480, "pdt": -420, "cet": 60, "cest": 120, "bst": 60, "met": 60, "mest": 120, "eet": 120, "eest": 180,
        "jst": 540,
    ]

    /// `2026-11-28T10:00:00Z`, or `nil` when the text is not a date.
    package static func rfc3339(_ text: String) -> String? {
        guard let seconds = epochSeconds(text) else { return nil }
        return format(seconds)
    }

    /// Seconds since 1970 (UTC) for a Date header value.
    package static func epochSeconds(_ text: String) -> Int64? {
        var cleaned = ""
        var depth = 0
        for character in text {
            if character == "(" {
                depth += 1
                continue
            }
            if character == ")" {
                depth = max(0, depth - 1)
                continue
            }
            if depth == 0 { cleaned.append(character == "," ? " " : character) }
        }
        let tokens = cleaned.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" })
            .map(String.init)
        var day: Int?
        var month: Int?
        var year: Int?
        var time: (Int, Int, Int)?
        var offset: Int?
        var numbers: [String] = []
        for token in tokens {
            if month == nil, token.count >= 3, let index = months.firstIndex(of: String(token.prefix(3))),
                token.allSatisfy({ $0.isLetter || $0 == "." })
            {
                month = index + 1
            } else if time == nil, token.contains(":") {
                var clock = token
                var zoneSuffix: String? = nil
                if let sign = clock.firstIndex(where: { $0 == "+" || $0 == "-" }) {
                    zoneSuffix = String(clock[sign...])
                    clock = String(clock[..<sign])
                }
                let parts = clock.split(separator: ":").map { Int($0) }
                guard parts.count >= 2, parts.count <= 3, parts.allSatisfy({ $0 != nil }) else { return nil }
                time = (parts[0]!, parts[1]!, parts.count == 3 ? parts[2]! : 0)
                if let zoneSuffix { offset = numericZone(zoneSuffix) }
            } else if offset == nil, token.first == "+" || token.first == "-", let zone = numericZone(token) {
                offset = zone
            } else if token.allSatisfy(\.isNumber) {
                numbers.append(token)
            } else if offset == nil, let zone = zones[token] {
                offset = zone
            } else if offset == nil, token.count == 1, let letter = token.first, letter.isLetter {
                offset = 0  // military zones are unreliable (RFC 5322 §4.3): treat as -0000
            }
        }
        // Day then year in RFC order; asctime has the year last too.
        for number in numbers {
            if day == nil, number.count <= 2, let value = Int(number), (1...31).contains(value) {
                day = value
            } else if year == nil, let value = Int(number) {
                year =
                    number.count == 2
                    ? (value < 50 ? 2000 + value : 1900 + value) : number.count == 3 ? 1900 + value : value
            }
        }
        guard let day, let month, let year, let time, (1...9999).contains(year), (0...23).contains(time.0),
            (0...59).contains(time.1), (0...60).contains(time.2)
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds =
            Int64(days) * 86_400 + Int64(time.0 * 3600 + time.1 * 60 + min(time.2, 59)) - Int64((offset ?? 0) * 60)
        return seconds
    }

    private static func numericZone(_ token: String) -> Int? {
        let sign = token.first == "-" ? -1 : 1
        let digits = token.dropFirst()
        guard digits.count == 4, digits.allSatisfy(\.isNumber), let value = Int(digits) else { return nil }
        let minutes = (value / 100) * 60 + value % 100
        return minutes <= 14 * 60 ? sign * minutes : nil
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func format(_ seconds: Int64) -> String {
        let days = Int(seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400)
        let secondsOfDay = Int(seconds - Int64(days) * 86_400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return
            "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondsOfDay / 3600, 2)):\(pad(secondsOfDay / 60 % 60, 2)):\(pad(secondsOfDay % 60, 2))Z"
    }
}
