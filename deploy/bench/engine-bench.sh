#!/usr/bin/env bash
# The delivery engine against an earlier lmtphook, side by side in one run (same machine, same
# receiver, alternating runs):
#   deploy/bench/engine-bench.sh BASE_BINARY [ROUNDS]
# BASE_BINARY: a release build of the earlier version, e.g.
#   git worktree add /tmp/old-main e6bd12d && (cd /tmp/old-main && swift build -c release --static-swift-stdlib --product lmtphook)
#   deploy/bench/engine-bench.sh /tmp/old-main/.build/release/lmtphook 3
# Per binary and round: 2 KB messages over 20 pipelined connections to a 204-answering receiver
# (lmtphook sink), spool on: msgs/s, relay CPU ms per message, context switches per message
# (voluntary + involuntary, summed over /proc/PID/task/*/status), threads when idle and under load.
# Then the scheduler: 20,000 entries queued for an endpoint that never answers (breaker open), the
# relay's CPU over 20 s of idling with them.
set -euo pipefail
cd "$(dirname "$0")/../.."
base=${1:?usage: engine-bench.sh BASE_BINARY [ROUNDS]}
rounds=${2:-3}
lab=${LAB:-../shared/lab}
swift build -c release --product lmtphook --static-swift-stdlib >/dev/null
head=$(swift build -c release --show-bin-path)/lmtphook
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lmtphook-engine-XXXXXX")
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cc -O2 -pthread -o "$work/lmtp-load" "$lab/lmtp-load.c"
hz=$(getconf CLK_TCK)
port=18214
"$head" sink --listen "127.0.0.1:$port" --output /dev/null --log-level error &
sink=$!
sleep 0.5

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# voluntary (the relay's own hand-offs: a thread waits for another) and involuntary (preempted,
# mostly by the load generator woken by the relay's socket writes on this 2-core machine)
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2} END {print v, n}'; }
threads() { ls /proc/"$1"/task | wc -l; }
wait_socket() { for _ in $(seq 400); do [[ -S $1 ]] && return 0; sleep 0.05; done; echo "no socket $1" >&2; exit 1; }

printf '%-6s %-5s %9s %11s %13s %11s %11s %12s %12s\n' binary round msgs/s cpu_ms/msg switches/msg voluntary involuntary threads_idle threads_load
# Then the same pinned: the relay on CPU 1, the load generator and the receiver on CPU 0, so that
# their threads do not preempt the relay (its own switches only).
relay_cpu=() load_cpu=()
throughput() { # NAME BINARY ROUND
    rm -rf "$work/spool" "$work/lmtp.sock"
    "${relay_cpu[@]}" "$2" serve --socket "$work/lmtp.sock" --spool "$work/spool" --webhook "http://127.0.0.1:$port/hook" \
        --log-level error 2>"$work/$1.err" &
    local pid=$!
    wait_socket "$work/lmtp.sock"
    "$work/lmtp-load" -u "$work/lmtp.sock" -p -c 20 -n 2000 -s 2048 >/dev/null   # warm-up
    sleep 0.5
    local idle; idle=$(threads $pid)
    local cpu0 sw0; cpu0=$(cpu_ticks $pid); sw0=($(switches $pid))
    "${load_cpu[@]}" "$work/lmtp-load" -u "$work/lmtp.sock" -p -c 20 -n 20000 -s 2048 >"$work/load.out" &
    local load=$!
    sleep 1
    local busy; busy=$(threads $pid)
    wait $load
    local cpu1 sw1; cpu1=$(cpu_ticks $pid); sw1=($(switches $pid))
    kill -TERM $pid; wait $pid 2>/dev/null || true
    local line; line=$(cat "$work/load.out")
    local n rate; n=$(sed -E 's/.*msgs=([0-9]+).*/\1/' <<<"$line"); rate=$(sed -E 's/.*rate=([0-9.]+).*/\1/' <<<"$line")
    local vol=$((sw1[0] - sw0[0])) invol=$((sw1[1] - sw0[1]))
    printf '%-6s %-5s %9s %11s %13s %11s %11s %12s %12s\n' "$1" "$3" "$rate" \
        "$(awk -v t=$((cpu1 - cpu0)) -v hz=$hz -v n=$n 'BEGIN {printf "%.3f", t / hz / n * 1000}')" \
        "$(awk -v s=$((vol + invol)) -v n=$n 'BEGIN {printf "%.2f", s / n}')" \
        "$(awk -v s=$vol -v n=$n 'BEGIN {printf "%.2f", s / n}')" \
        "$(awk -v s=$invol -v n=$n 'BEGIN {printf "%.2f", s / n}')" "$idle" "$busy"
}
for round in $(seq "$rounds"); do
    throughput base "$base" "$round"
    throughput head "$head" "$round"
done
if (($(nproc) >= 2)); then
    echo "pinned: relay on CPU 1; load generator and receiver on CPU 0"
    taskset -a -p -c 0 "$sink" >/dev/null
    relay_cpu=(taskset -c 1) load_cpu=(taskset -c 0)
    for round in $(seq "$rounds"); do
        throughput base "$base" "$round"
        throughput head "$head" "$round"
    done
    relay_cpu=() load_cpu=()
    taskset -a -p -c 0-$(($(nproc) - 1)) "$sink" >/dev/null
fi

# The scheduler with 20,000 entries for an endpoint that never answers.
python3 - "$work/hang.port" <<'PY' &
import socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 0)); s.listen(4096)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    c, _ = s.accept(); held.append(c)  # read nothing, answer nothing
PY
while [[ ! -s $work/hang.port ]]; do sleep 0.1; done
hang=$(cat "$work/hang.port")
scheduler() { # NAME BINARY
    rm -rf "$work/spool" "$work/lmtp.sock"
    "$2" serve --socket "$work/lmtp.sock" --spool "$work/spool" --webhook "http://127.0.0.1:$hang/hook" \
        --sync-budget 200ms --retry-schedule 1s --webhook-timeout 3600 --log-level error 2>"$work/$1.sched.err" &
    local pid=$!
    wait_socket "$work/lmtp.sock"
    "$work/lmtp-load" -u "$work/lmtp.sock" -p -c 20 -n 20000 -s 512 >/dev/null
    local queued; queued=$(ls "$work/spool/queue" | grep -c '\.msg$' || true)
    sleep 5
    local cpu0; cpu0=$(cpu_ticks $pid)
    sleep 20
    local cpu1; cpu1=$(cpu_ticks $pid)
    kill -KILL $pid; wait $pid 2>/dev/null || true
    printf '%-6s %12s %22s\n' "$1" "$queued" "$(awk -v t=$((cpu1 - cpu0)) -v hz=$hz 'BEGIN {printf "%.1f", t / hz / 20 * 100}')"
}
[[ ${SKIP_SCHEDULER:-0} == 1 ]] && exit 0
printf '\n%-6s %12s %22s\n' binary queued idle_cpu_%_of_a_core
scheduler base "$base"
scheduler head "$head"
