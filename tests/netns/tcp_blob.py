#!/usr/bin/env python3
"""Moves a file over one TCP connection, for integrity checks across the
overlay: `receive PORT OUT` accepts one connection (within 30 s) and writes
what arrives to OUT; `send HOST:PORT FILE` sends FILE and closes."""
import socket
import sys


def main():
    if sys.argv[1] == "receive":
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", int(sys.argv[2])))
        srv.listen(1)
        srv.settimeout(30)
        conn, _ = srv.accept()
        conn.settimeout(30)
        with open(sys.argv[3], "wb") as out:
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    break
                out.write(data)
    else:
        host, port = sys.argv[2].rsplit(":", 1)
        conn = socket.create_connection((host, int(port)), timeout=30)
        with open(sys.argv[3], "rb") as f:
            conn.sendfile(f)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # the receiver's close: everything arrived
        conn.close()


if __name__ == "__main__":
    main()
