#!/bin/sh
# Runs one of lmtphook's libFuzzer fuzzers for a given time.
#
#   deploy/fuzz/fuzz.sh lmtp|mime [SECONDS] [extra libFuzzer options…]
#
#   lmtp  arbitrary byte streams, split arbitrarily, into the LMTP session engine (LMTPCore):
#         whole and split runs must give identical replies and messages; every reply well formed;
#         size, header and recipient limits hold; spilled bytes add up.
#   mime  arbitrary messages into the MIME parser, payload v1 encoder and the Slack renderer:
#         every body must be valid JSON and carry the raw message.
#
# Builds with coverage instrumentation and AddressSanitizer into .build/fuzz, keeps the growing
# corpus in .build/fuzz-corpus/TARGET (seeded from Tests/FuzzingTests/Corpus/TARGET and, for mime,
# ../shared/corpus), writes findings to .build/fuzz-findings/TARGET. A finding exits non-zero;
# reproduce it with `swift run lmtphook-fuzz TARGET FILE` and add the file to the seed corpus.
set -eu
target=${1:?usage: fuzz.sh lmtp|mime [SECONDS] [libFuzzer options]}
seconds=${2:-60}
shift; [ $# -gt 0 ] && shift
case $target in
    lmtp) max_len=20000 ;;
    mime) max_len=65536 ;;
    *) echo "unknown fuzzer '$target' (lmtp or mime)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
resource=$(swiftc -print-target-info | sed -n 's/.*"runtimeResourcePath": "\(.*\)".*/\1/p')
no_main=$(ls "$resource"/../clang/*/lib/linux/libclang_rt.fuzzer_no_main-*.a 2>/dev/null | head -n 1)
[ -n "$no_main" ] || { echo "libFuzzer (libclang_rt.fuzzer_no_main) not found under $resource/clang" >&2; exit 1; }

# Instrument every Swift module for coverage (frontend only, so the link does not pull in
# libFuzzer's own main) and link libFuzzer without main: main.swift starts LLVMFuzzerRunDriver.
swift build -c release --product lmtphook-fuzz --scratch-path .build/fuzz \
    -Xswiftc -DFUZZING -Xswiftc -sanitize=address -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer,address \
    -Xlinker "$no_main" -Xlinker -lstdc++ >&2

export SWIFT_BACKTRACE=enable=no  # ASan reports findings; the Swift backtracer would get in its way
corpus=.build/fuzz-corpus/$target
findings=.build/fuzz-findings/$target
mkdir -p "$corpus" "$findings"
# Seeds: Corpus/TARGET (the lmtp transcripts; findings of either fuzzer); for mime also the
# parser's test messages, which are stored once, in Tests/MailCoreTests/Messages.
if [ -d Tests/FuzzingTests/Corpus/"$target" ]; then cp -n Tests/FuzzingTests/Corpus/"$target"/* "$corpus"/; fi
if [ "$target" = mime ]; then cp -n Tests/MailCoreTests/Messages/*.eml "$corpus"/; fi
if [ "$target" = mime ] && [ ! -d ../shared/corpus ]; then
    # CI must fuzz from the real-world corpus; elsewhere say that it is missing.
    [ "${CI:-}" = true ] && { echo "fuzz.sh: ../shared/corpus is missing (CI=true: the mime fuzzer needs it)" >&2; exit 1; }
    echo "fuzz.sh: ../shared/corpus is missing; fuzzing from the local seeds only" >&2
fi
if [ "$target" = mime ] && [ -d ../shared/corpus ]; then
    find ../shared/corpus -type f ! -name "*.md" ! -name "*.json" -size -64k |
        while read -r file; do cp -n "$file" "$corpus/shared-$(echo "$file" | md5sum | cut -c1-12)"; done
fi
exec .build/fuzz/release/lmtphook-fuzz "$target" -max_total_time="$seconds" -max_len=$max_len -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/" "$@" "$corpus"
