#!/usr/bin/env bash
# Side-by-side benchmark, one command, one run: lmtphook against the two baselines in ../shared/lab
# (peer-aiosmtpd.py: a Python aiosmtpd relay; peer-pipe-curl.sh: Postfix pipe(8) + curl), all
# POSTing to the same loopback receiver (lmtphook sink, release build).
#   deploy/bench/bench.sh            # the README's figures (about 6 minutes after the release build)
#   deploy/bench/bench.sh --quick    # smaller counts, a smoke run
# Needs root for the Postfix peer (it reconfigures this machine's Postfix through
# ../shared/lab/postfix-lab; skipped without root). Reports, per workload: messages/s, p50/p99
# latency, CPU seconds per 1,000 messages, peak RSS; then idle RSS and the paced 1,000 msgs/s p99.
set -euo pipefail
cd "$(dirname "$0")/../.."
lab=${LAB:-../shared/lab}
quick=0; [[ ${1:-} == --quick ]] && quick=1
scale() { if [[ $quick == 1 ]]; then echo $(( ($1 + 9) / 10 )); else echo "$1"; fi; }
[[ -f $lab/lmtp-load.c ]] || { echo "bench: $lab/lmtp-load.c not found (set LAB=)" >&2; exit 1; }

echo "building release binaries…" >&2
swift build -c release --product lmtphook --static-swift-stdlib >/dev/null   # as shipped (install.sh, Containerfile)
swift build -c release --product lmtphook-bench --static-swift-stdlib >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lmtphook-bench-XXXXXX")
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cc -O2 -pthread -o "$work/lmtp-load" "$lab/lmtp-load.c"
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install -q aiosmtpd >&2
hz=$(getconf CLK_TCK)
port=18204   # peer-pipe-curl.sh posts to http://127.0.0.1:18204/hook
url="http://127.0.0.1:$port/hook"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
wait_socket() { for _ in $(seq 200); do [[ -S $1 ]] && return 0; sleep 0.05; done; echo "bench: no socket $1" >&2; exit 1; }

"$bin/lmtphook" sink --listen "127.0.0.1:$port" --output /dev/null --log-level error &
sink=$!
sleep 0.5

results=()
record() { results+=("$(printf '%-34s %-12s %9s %8s %8s %9s %9s' "$@")"); printf '%-34s %-12s %9s %8s %8s %9s %9s\n' "$@" >&2; }
record workload relay msgs/s p50_ms p99_ms cpu_s/1k peak_MB

# run_relay NAME WORKLOAD START_COMMAND… -- LOAD_ARGS…: starts the relay, runs lmtp-load, stops it.
run() {
    local name=$1 workload=$2; shift 2
    local start=() load=()
    while [[ $1 != -- ]]; do start+=("$1"); shift; done; shift
    load=("$@")
    rm -f "$work/lmtp.sock"; rm -rf "$work/spool"
    "${start[@]}" >/dev/null 2>"$work/$name.err" &
    local pid=$!
    wait_socket "$work/lmtp.sock"
    sleep 0.3
    local before; before=$(cpu_ticks $pid)
    local line; line=$("$work/lmtp-load" -u "$work/lmtp.sock" -p "${load[@]}")
    local after; after=$(cpu_ticks $pid)
    local peak; peak=$(hwm_kb $pid)
    kill -TERM $pid; wait $pid 2>/dev/null || true
    local n rate p50 p99 ok
    n=$(sed -E 's/.*msgs=([0-9]+).*/\1/' <<<"$line"); rate=$(sed -E 's/.*rate=([0-9.]+).*/\1/' <<<"$line")
    p50=$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line"); p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")
    ok=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")
    local r=1 i
    for ((i = 0; i < ${#load[@]}; i++)); do [[ ${load[i]} == -r ]] && r=${load[i+1]}; done
    [[ $ok == $((n * r)) ]] || echo "bench: $name $workload: not all recipients accepted: $line" >&2
    record "$workload" "$name" "$rate" "$p50" "$p99" "$(awk -v t=$((after - before)) -v hz=$hz -v n=$n 'BEGIN {printf "%.2f", t / hz / n * 1000}')" "$(awk -v k=$peak 'BEGIN {printf "%.0f", k / 1024}')"
}

lmtphook() { echo "$bin/lmtphook" serve --socket "$work/lmtp.sock" --spool "$work/spool" --webhook "${1:-$url}" --log-level error; }
aiosmtpd() { echo python3 "$lab/peer-aiosmtpd.py" "$work/lmtp.sock" "$url"; }

for relay in lmtphook aiosmtpd; do
    # shellcheck disable=SC2046
    run $relay "2 KB, 1 connection" $($relay) -- -c 1 -n "$(scale 3000)" -s 2048
    # shellcheck disable=SC2046
    run $relay "2 KB, 20 connections" $($relay) -- -c 20 -n "$(scale 10000)" -s 2048
    # shellcheck disable=SC2046
    run $relay "2 KB, 100 connections" $($relay) -- -c 100 -n "$(scale 10000)" -s 2048
    # shellcheck disable=SC2046
    run $relay "2 KB, 3 rcpts, 20 conns" $($relay) -- -c 20 -n "$(scale 5000)" -s 2048 -r 3
    # shellcheck disable=SC2046
    run $relay "1 MB, 4 connections" $($relay) -- -c 4 -n "$(scale 200)" -s 1048576
    # shellcheck disable=SC2046
    run $relay "20 MB × 20 concurrent" $($relay) -- -c 20 -n 20 -s 20971520
done
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# shellcheck disable=SC2046
run lmtphook "receiver down (spool), 20 conns" $(lmtphook "http://127.0.0.1:$dead/") -- -c 20 -n "$(scale 5000)" -s 2048

# Idle RSS and latency at a fixed 1,000 msgs/s (open loop, over 4 and over 16 connections).
for relay in lmtphook aiosmtpd; do
    rm -f "$work/lmtp.sock"; rm -rf "$work/spool"
    # shellcheck disable=SC2046
    $($relay) >/dev/null 2>&1 &
    pid=$!
    wait_socket "$work/lmtp.sock"; sleep 2
    idle=$(rss_kb $pid)
    results+=("$relay idle RSS: $(awk -v k=$idle 'BEGIN {printf "%.1f", k / 1024}') MB")
    for conns in 4 16; do
        paced=$("$bin/lmtphook-bench" load --socket "$work/lmtp.sock" --rate 1000 --count "$(scale 10000)" --conns $conns --size 2048)
        echo "$relay: paced over $conns connections: $paced" >&2
        results+=("$relay at 1,000 msgs/s over $conns connections: $paced")
    done
    kill -TERM $pid; wait $pid 2>/dev/null || true
done

# Postfix pipe + curl: SMTP into this machine's Postfix, pipe(8) runs curl per recipient.
if [[ $(id -u) == 0 && -x $lab/postfix-lab ]]; then
    n=$(scale 2000)
    "$lab/postfix-lab" up "pipe:$(readlink -f "$lab/peer-pipe-curl.sh")" >/dev/null
    sleep 1
    before_busy=$(busy_ticks); before_sink=$(cpu_ticks $sink)
    started=$(date +%s.%N)
    TIMEFORMAT='%U %S'
    { time "$work/lmtp-load" -e -t 127.0.0.1:25 -c 20 -n "$n" -s 2048 >"$work/inject.out"; } 2>"$work/inject.time"
    peak=0
    while ! "$lab/postfix-lab" wait "$n" 1 >/dev/null 2>&1; do
        kb=$(ps -eo rss=,user=,comm= | awk '$2 == "postfix" || $2 == "nobody" || $3 == "master" || $3 == "curl" || $3 == "pipe" {s += $1} END {print s + 0}')
        (( kb > peak )) && peak=$kb
        (( $(date +%s) - ${started%.*} > 600 )) && { echo "bench: pipe+curl did not finish" >&2; break; }
    done
    elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
    busy=$(( $(busy_ticks) - before_busy )); sinkcpu=$(( $(cpu_ticks $sink) - before_sink ))
    loadcpu=$(awk '{print $1 + $2}' "$work/inject.time")
    cpu=$(awk -v b=$busy -v s=$sinkcpu -v hz=$hz -v l="$loadcpu" -v n=$n 'BEGIN {printf "%.2f", ((b - s) / hz - l) / n * 1000}')
    record "2 KB, 20 connections" "pipe+curl" "$(awk -v n=$n -v e="$elapsed" 'BEGIN {printf "%.1f", n / e}')" "—" "—" "$cpu" "$((peak / 1024))"
    "$lab/postfix-lab" down >/dev/null 2>&1 || true
else
    echo "bench: the Postfix pipe + curl peer needs root and $lab/postfix-lab; skipped" >&2
fi

echo
echo "lmtphook bench, $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r)"
printf '%s\n' "${results[@]}"
