import Fuzzing

// The two fuzzers. Built for libFuzzer by deploy/fuzz/fuzz.sh (`-DFUZZING`, coverage and
// AddressSanitizer); in a normal build the same binary replays files or directories through a
// fuzzer, which is how crash inputs are reproduced:
//
//     lmtphook-fuzz lmtp|mime [libFuzzer options] [corpus or crash files…]
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func complain(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

let arguments = CommandLine.arguments
guard arguments.count >= 2, let target = ["lmtp": LMTPSessionFuzzer.run, "mime": MessageParserFuzzer.run][arguments[1]]
else {
    complain("usage: lmtphook-fuzz lmtp|mime [libFuzzer options] [corpus or input files…]")
    exit(2)
}
nonisolated(unsafe) let fuzzTarget: (UnsafeBufferPointer<UInt8>) -> Void = target

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

// libFuzzer reads its own options; the target name is removed from argv first.
var argv: [UnsafeMutablePointer<CChar>?] = [strdup(arguments[0])] + arguments.dropFirst(2).map { strdup($0) } + [nil]
var argc = CInt(argv.count - 1)
let status = argv.withUnsafeMutableBufferPointer { buffer -> CInt in
    var base = buffer.baseAddress!
    return LLVMFuzzerRunDriver(&argc, &base) { data, count in
        fuzzTarget(UnsafeBufferPointer(start: data, count: count))
        return 0
    }
}
exit(status)
#else
var files: [String] = []
for path in arguments.dropFirst(2) where !path.hasPrefix("-") {
    var info = stat()
    guard stat(path, &info) == 0 else {
        complain("lmtphook-fuzz: cannot read \(path)")
        exit(1)
    }
    if info.st_mode & S_IFMT == S_IFDIR, let directory = opendir(path) {
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { files.append(path + "/" + name) }
        }
        closedir(directory)
    } else {
        files.append(path)
    }
}
for file in files.sorted() {
    guard let handle = fopen(file, "rb") else { continue }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = fread(&chunk, 1, chunk.count, handle)
        if count <= 0 { break }
        bytes += chunk[..<count]
    }
    fclose(handle)
    bytes.withUnsafeBufferPointer { fuzzTarget($0) }
}
print("\(files.count) inputs ran without a finding")
#endif
