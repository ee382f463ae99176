#!/usr/bin/env python3
"""Sends N copies of one message over C concurrent LMTP connections (a unix socket); prints the result."""
import smtplib, sys, threading, time
sock, path, conns, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(path, 'rb').read()
lock = threading.Lock(); sent = [0]; ok = [0]; errors = []
def worker():
    while True:
        with lock:
            if sent[0] >= total: return
            sent[0] += 1
        try:
            c = smtplib.LMTP(sock)
            c.ehlo_or_helo_if_needed() if False else c.ehlo('load')
            refused = c.sendmail('load@load.test', ['user0@example.test'], data)
            c.quit()
            with lock: ok[0] += 1 if not refused else 0
        except Exception as e:
            with lock: errors.append(repr(e)[:200])
start = time.time()
threads = [threading.Thread(target=worker) for _ in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.time() - start
print(f"msgs={total} ok={ok[0]} errors={len(errors)} seconds={elapsed:.1f} rate={total/elapsed:.2f}", errors[:3])
