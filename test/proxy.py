#!/usr/bin/env python3
"""Local HTTP proxy used by the webhook extension's TAP tests (028_proxy.pl).

Python 3 standard library only.

    python3 test/proxy.py --port-file PATH --log PATH --upstream-port N
                          [--auth USER:PASSWORD] [--max-requests N]

Binds 127.0.0.1 on an ephemeral port, writes the port to --port-file once
listening, and serves at most --max-requests requests (default 100), then
exits; SIGTERM/SIGINT stop it earlier.

Every request is appended to --log as one JSON line before it is answered:

    {"method": ..., "target": <request target as sent>,
     "headers": {<lower-cased name>: <value>}, "conn": <id per TCP connection>}

A forward request (absolute-form target, "POST http://host:port/path") is
sent on as "POST /path" with the Proxy-* headers removed; CONNECT opens a
tunnel.  Whatever host the client names, the proxy only ever connects to
127.0.0.1:--upstream-port, so a test never reaches beyond the loopback
interface.  With --auth, a request without "Proxy-Authorization: Basic
base64(USER:PASSWORD)" gets 407 Proxy Authentication Required.
"""

import argparse
import base64
import itertools
import json
import os
import signal
import socket
import sys
import threading
import urllib.parse

LOG_LOCK = threading.Lock()
COUNT_LOCK = threading.Lock()
CONN_IDS = itertools.count(1)
STATE = {"served": 0}


def log(path, entry):
    with LOG_LOCK, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def read_head(sock):
    """The request head (up to the blank line) and what came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > 1024 * 1024:
            return None, b""
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def relay(a, b):
    """Copy bytes from a to b until a closes, then shut b's write side."""
    try:
        while True:
            chunk = a.recv(65536)
            if not chunk:
                break
            b.sendall(chunk)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def handle(conn, args, done):
    conn_id = next(CONN_IDS)
    try:
        while True:
            head, rest = read_head(conn)
            if head is None:
                return
            lines = head.split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = {}
            order = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
                order.append((name.strip(), value.strip()))
            log(args.log, {"method": method, "target": target,
                           "headers": headers, "conn": conn_id})
            with COUNT_LOCK:
                STATE["served"] += 1
                if STATE["served"] >= args.max_requests:
                    done.set()

            if args.auth is not None:
                want = "Basic " + base64.b64encode(args.auth.encode()).decode()
                if headers.get("proxy-authorization") != want:
                    length = int(headers.get("content-length", "0") or 0)
                    while len(rest) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        rest += chunk
                    rest = rest[length:]
                    conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                 b"Proxy-Authenticate: Basic realm=\"test\"\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                    continue

            upstream = socket.create_connection(("127.0.0.1", args.upstream_port), timeout=30)
            if method == "CONNECT":
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                t = threading.Thread(target=relay, args=(upstream, conn), daemon=True)
                t.start()
                relay(conn, upstream)
                t.join(30)
                upstream.close()
                return

            # Forward: origin-form upstream, one request per connection.
            parts = urllib.parse.urlsplit(target)
            path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            length = int(headers.get("content-length", "0") or 0)
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
            body = rest[:length]
            out = [f"{method} {path} {version}"]
            for name, value in order:
                if name.lower().startswith("proxy-") or name.lower() == "connection":
                    continue
                out.append(f"{name}: {value}")
            out.append("Connection: close")
            upstream.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            relay(upstream, conn)
            upstream.close()
            return
    except (OSError, ValueError):
        return
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--auth")
    ap.add_argument("--max-requests", type=int, default=100)
    args = ap.parse_args()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.2)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(tmp, args.port_file)

    threads = []
    while not done.is_set():
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        except OSError:
            break
        conn.settimeout(60)
        t = threading.Thread(target=handle, args=(conn, args, done), daemon=True)
        t.start()
        threads.append(t)
    srv.close()
    # Let the requests under way finish (bounded), then exit.
    for t in threads:
        t.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
