#!/usr/bin/env python3
"""A webhook receiver that misbehaves on purpose (for lmtphook's hostile-receiver tests).

    hostile_receiver.py MODE PORTFILE [CERT KEY]

Listens on 127.0.0.1 (a free port, written to PORTFILE), and answers every request per MODE:
  silent     reads the request, never answers
  drip       sends "HTTP/1.1 200 OK" and headers one byte every 200 ms, forever
  huge       200 OK with a 1 GiB body, sent as fast as the client reads
  huge-error 503 with a 1 GiB body
  redirect   302 to itself, every time
  reset      reads the request, then resets the connection (RST)
  tls        HTTPS with a self-signed certificate (CERT, KEY), answers 200
Counts requests in PORTFILE.count.
"""
import socket, ssl, struct, sys, threading, time

mode, portfile = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(64)
port = server.getsockname()[1]
context = None
if mode == "tls":
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
count = 0
lock = threading.Lock()


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        rest += chunk
    global count
    with lock:
        count += 1
        with open(portfile + ".count", "w") as f:
            f.write(str(count))
    return True


def huge(conn, status):
    conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\nContent-Length: 1073741824\r\n\r\n")
    block = b"x" * 65536
    for _ in range(1073741824 // 65536):
        conn.sendall(block)


def serve(conn):
    try:
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        while read_request(conn):
            if mode == "silent":
                time.sleep(3600)
            elif mode == "drip":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: " + b"y" * 100000:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.2)
            elif mode == "huge":
                huge(conn, b"200 OK")
            elif mode == "huge-error":
                huge(conn, b"503 Service Unavailable")
            elif mode == "redirect":
                conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/\r\nContent-Length: 0\r\n\r\n" % port)
            elif mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            elif mode == "tls":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


with open(portfile + ".tmp", "w") as f:
    f.write(str(port))
import os
os.rename(portfile + ".tmp", portfile)
while True:
    connection, _ = server.accept()
    threading.Thread(target=serve, args=(connection,), daemon=True).start()
