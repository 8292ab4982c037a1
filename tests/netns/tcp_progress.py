#!/usr/bin/env python3
"""One long TCP connection whose progress is timed, for outages across the
overlay: `receive PORT LOG` accepts one connection (within 30 s) and appends
"UNIX_TIME TOTAL_BYTES" to LOG each time data arrives (at most every 20 ms)
until the sender closes; `send HOST:PORT KBYTES_PER_SECOND` sends at about
that rate until it is stopped (SIGTERM)."""
import signal
import socket
import sys
import time


def receive(port, log_path):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(30)
    conn, _ = srv.accept()
    total, last = 0, 0.0
    with open(log_path, "a", buffering=1) as log:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            total += len(data)
            now = time.time()
            if now - last >= 0.02:
                log.write(f"{now:.6f} {total}\n")
                last = now
        log.write(f"{time.time():.6f} {total} closed\n")


def send(target, rate_kb):
    host, port = target.rsplit(":", 1)
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.settimeout(None)  # an outage blocks the sender; it must not end it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    chunk = b"x" * 4096
    per_tick = max(1, rate_kb // 4 // 50)  # chunks per 20 ms
    try:
        while True:
            for _ in range(per_tick):
                conn.sendall(chunk)
            time.sleep(0.02)
    finally:
        conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "receive":
        receive(int(sys.argv[2]), sys.argv[3])
    else:
        send(sys.argv[2], int(sys.argv[3]))
