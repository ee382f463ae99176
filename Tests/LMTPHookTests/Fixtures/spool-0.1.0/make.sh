#!/usr/bin/env bash
# Makes the spool in this folder with the lmtphook of 0.1.0 (commit e6bd12d, the main branch before
# the delivery engine), so that UpgradeTests prove a new binary reads and delivers what an older
# one queued. Run once, by hand; the result is committed:
#   git worktree add /tmp/old-main e6bd12d && (cd /tmp/old-main && swift build --product lmtphook)
#   Tests/LMTPHookTests/Fixtures/spool-0.1.0/make.sh /tmp/old-main/.build/debug/lmtphook
# What it holds: queued entries (JSON and Slack format, one with two recipients, one with a
# UTF-8 subject), state files with attempt history, a dead letter (max age reached) with its
# history, and a quarantined entry (truncated, moved aside by the old binary's start-up check).
# The endpoints had a header, a signing secret and a token in the URL, as operators configure them.
set -euo pipefail
old=${1:?usage: make.sh PATH-TO-OLD-LMTPHOOK}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/lmtphook-fixture.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
rm -rf "$here/spool"

# A receiver that is down for everything: 503.
python3 - "$work/port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_port))
s.serve_forever()
PY
while [[ ! -s $work/port ]]; do sleep 0.1; done
port=$(cat "$work/port")

config() { # max_age retry_schedule
    cat >"$work/lmtphook.yaml" <<YAML
listen:
  - socket: $work/lmtp.sock
spool:
  path: $work/spool
  max_age: $1
  retry_schedule: [$2]
delivery:
  sync_budget: 2s
endpoints:
  - name: inbound
    url: "http://127.0.0.1:$port/inbound?token=planted-url-token"
    headers: {Authorization: "Bearer planted-header-value"}
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  - name: alerts
    url: "http://127.0.0.1:$port/alerts"
    format: slack
routes:
  - {match: {local: "alert*"}, endpoint: alerts}
  - {match: "*", endpoint: inbound}
YAML
}
serve() { "$old" serve --config "$work/lmtphook.yaml" 2>>"$work/serve.log" & pid=$!; while [[ ! -S $work/lmtp.sock ]]; do sleep 0.1; done; }
stop() { kill -TERM "$pid"; wait "$pid" || true; rm -f "$work/lmtp.sock"; }
send() { # subject recipients...
    local subject=$1; shift
    local to=(); for r in "$@"; do to+=(--to "$r"); done
    swaks --protocol LMTP --socket "$work/lmtp.sock" --from sender@example.org "${to[@]}" \
        --header "Subject: $subject" --header "Message-ID: <$(echo "$subject" | md5sum | cut -c1-16)@example.org>" \
        --body "Body of $subject" >/dev/null
}

# 1. A dead letter: max age 2 s, retried after 1 s, then past its age.
config 2s 1s
serve
send "Dead letter" support@example.test
sleep 5
stop

# 2. Queued entries with history: retried after 1 s, then due a minute later (long past when tests run).
config 5d "1s, 1m"
serve
send "Plain queued" support@example.test
send "Two recipients" support@example.test sales@example.test
send "Alert: disk full" alert-disk@example.test
send "Grüße aus Köln — UTF-8" "jörg@example.test"
sleep 3
send "Queued, no attempt yet" support@example.test
send "Damaged later" support@example.test
stop

# 3. A damaged entry: truncated, then the old binary's start-up moves it to quarantine/.
damaged=$(grep -l "Damaged later" "$work"/spool/queue/*.msg)
truncate -s 300 "$damaged"
serve
stop

cp -a "$work/spool" "$here/spool"
rm -rf "$here/spool/tmp"
find "$here/spool" -type f | sort | sed "s|$here/||"
