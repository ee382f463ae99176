/// Short, time-sortable message ids: 10 characters of milliseconds and 6 of randomness in
/// Crockford base32 (`01JDX7Q9ZK8M2P4T`). They name a message in LMTP replies, logs and the JSON.
public enum MessageIdentifier {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// Makes an id from a time and 30 random bits.
    public static func make(at time: UnixTime, random: UInt32) -> String {
        var out = [UInt8](repeating: 0, count: 16)
        var value = UInt64(max(0, time.milliseconds))
        for index in stride(from: 9, through: 0, by: -1) {
            out[index] = alphabet[Int(value & 31)]
            value >>= 5
        }
        var bits = random
        for index in stride(from: 15, through: 10, by: -1) {
            out[index] = alphabet[Int(bits & 31)]
            bits >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Makes an id for now with system randomness.
    public static func make() -> String {
        make(at: .now(), random: UInt32.random(in: 0...UInt32.max))
    }
}
