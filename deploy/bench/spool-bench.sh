#!/usr/bin/env bash
# Spool benchmarks, one run, figures for the README:
#  1. durable spooling rate with the receiver down: 20 concurrent LMTP connections, 2 KB messages,
#     every 250 backed by an fsync'd spool entry (the webhook refuses connections, so each message
#     is queued; after a few failures the circuit opens and mail goes straight to the spool);
#  2. replay drain rate of that spool to a local receiver (`lmtphook spool replay --all`);
#  3. retry-worker drain rate: `serve` restarted with the receiver up empties the spool by itself.
# Needs ../shared/lab/lmtp-load.c (the LMTP load generator) and a C compiler.
#   deploy/bench/spool-bench.sh [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/../.."
messages=${1:-4000}
lab=../shared/lab
[[ -f $lab/lmtp-load.c ]] || { echo "spool-bench: $lab/lmtp-load.c not found" >&2; exit 1; }
swift build -c release --product lmtphook >/dev/null
bin=.build/release/lmtphook
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lmtphook-bench-XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cc -O2 -pthread -o "$work/lmtp-load" "$lab/lmtp-load.c"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_socket() { for _ in $(seq 100); do [[ -S $1 ]] && return 0; sleep 0.1; done; echo "no socket $1" >&2; exit 1; }

dead_port=$(free_port)
"$bin" serve --socket "$work/lmtp.sock" --spool "$work/spool" --webhook "http://127.0.0.1:$dead_port/" --log-level error &
serve=$!
wait_socket "$work/lmtp.sock"
echo "== durable spooling, receiver down: $messages × 2 KB, 20 connections, pipelined"
"$work/lmtp-load" -u "$work/lmtp.sock" -c 20 -n "$messages" -s 2048 -p
kill -TERM $serve; wait $serve || true
echo "spool entries: $("$bin" spool stats --spool "$work/spool" | head -1)"

sink_port=$(free_port)
"$bin" sink --listen "127.0.0.1:$sink_port" --output "$work/received.jsonl" --log-level error &
sink=$!
sleep 0.5
half=$((messages / 2))
ids=$("$bin" spool list --spool "$work/spool" | head -n $half | cut -d' ' -f1)
echo "== replay drain to a local receiver: $half entries (lmtphook spool replay, one request at a time)"
start=$(date +%s.%N)
"$bin" spool replay --spool "$work/spool" --to-url "http://127.0.0.1:$sink_port/" $ids | tail -1
end=$(date +%s.%N)
python3 -c "print(f'replay drain: {$half/($end-$start):.0f} msgs/s ({$end-$start:.2f} s)')"

echo "== retry worker drain: serve restarted with the receiver up, remaining $((messages - half)) entries"
# Queued entries are due on the retry schedule; make them due now for the measurement.
python3 - "$work/spool/queue" <<'PY'
import json, os, sys
for name in os.listdir(sys.argv[1]):
    if name.endswith(".state"):
        path = os.path.join(sys.argv[1], name)
        try:
            state = json.load(open(path)); state["nextAttemptMilliseconds"] = 0; json.dump(state, open(path, "w"))
        except Exception: pass
PY
start=$(date +%s.%N)
"$bin" serve --socket "$work/lmtp.sock" --spool "$work/spool" --webhook "http://127.0.0.1:$sink_port/" --log-level error &
serve=$!
while [[ -n $(ls "$work/spool/queue" 2>/dev/null | grep -m1 '\.msg$' || true) ]]; do sleep 0.05; done
end=$(date +%s.%N)
python3 -c "print(f'retry-worker drain: {($messages-$half)/($end-$start):.0f} msgs/s ({$end-$start:.2f} s)')"
kill -TERM $serve; wait $serve || true
echo "receiver got $(wc -l < "$work/received.jsonl") documents (expected $messages)"
