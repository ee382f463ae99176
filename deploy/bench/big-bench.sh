#!/usr/bin/env bash
# Peak RSS of `serve` for 20 concurrent 20 MB messages (spool on, default limits), the figure of
# docs/performance.md: plain text through ../shared/lab/lmtp-load.c, and a 21.5 MB message with a
# 15 MB base64 attachment through big-load.py. Run from the repository root.
#   deploy/bench/big-bench.sh [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
lab=${LAB:-../shared/lab}
conns=${1:-20}
swift build -c release --static-swift-stdlib --product lmtphook >/dev/null
bin=$(swift build -c release --show-bin-path)/lmtphook
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lmtphook-big-XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cc -O2 -pthread -o "$work/lmtp-load" "$lab/lmtp-load.c"
python3 - "$work/attach.eml" <<'PY'
import base64, os, sys
b = base64.encodebytes(os.urandom(15 * 1024 * 1024)).replace(b'\n', b'\r\n')
open(sys.argv[1], 'wb').write(b"From: s@load.test\r\nTo: user0@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + b + b"\r\n--b1--\r\n")
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" sink --listen "127.0.0.1:$port" --output /dev/null --log-level error &
sleep 0.5
for mode in text attachment; do
    rm -rf "$work/spool" "$work/lmtp.sock"
    "$bin" serve --socket "$work/lmtp.sock" --spool "$work/spool" --webhook "http://127.0.0.1:$port/hook" --log-level error &
    pid=$!
    for _ in $(seq 100); do [[ -S $work/lmtp.sock ]] && break; sleep 0.05; done
    if [[ $mode == text ]]; then
        line=$("$work/lmtp-load" -u "$work/lmtp.sock" -c "$conns" -n "$conns" -s 20971520)
    else
        line=$(python3 deploy/bench/big-load.py "$work/lmtp.sock" "$work/attach.eml" "$conns" "$conns")
    fi
    echo "$mode: $line; peak RSS $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status") MB"
    kill -TERM $pid; wait $pid 2>/dev/null || true
done
