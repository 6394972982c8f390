#!/usr/bin/env python3
"""Local HTTP receiver used by the webhook extension's TAP tests.

Python 3 standard library only (runs on Debian 12's python3).

    python3 test/receiver.py --port-file PATH --log PATH [--port N] [--host A]
        [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]

Binds 127.0.0.1 (or --host, which must be a loopback address such as
127.0.0.2; port 0 = ephemeral), writes the real port to --port-file
atomically once listening, and runs until SIGTERM/SIGINT.

With --tls-cert and --tls-key it speaks HTTPS (HTTP/1.1 only: no ALPN h2)
with that certificate; with --tls-client-ca too, it requires a client
certificate issued by that CA, and a connection without one fails its TLS
handshake before any request is read (nothing is logged for it).  The
handshake runs in the connection's own thread, never in the accepting one.

Every request (any method) is appended to --log as one JSON line *before* the
requested behaviour is carried out:

    {"t": <unix time received>, "method": ..., "path": <path incl. query>,
     "headers": {<lower-cased name>: <value, repeats joined with ", ">},
     "body": <utf-8 decoded, errors=replace>, "conn": <id per TCP connection>,
     "tls": {"version": ..., "client_cert": <client subject CN or null>}}
    ("tls" only with --tls-cert)

The response is chosen by path segments, which can be combined, e.g.
/ok, /status/503, /delay/2000/ok, /status/429/retry-after/2:

    /status/NNN         respond with status NNN (default 200, body "ok")
    /delay/MS           sleep MS milliseconds before answering
    /retry-after/V      add a "Retry-After: V" header
    /hang               never answer (up to 600 s, or until shutdown)
    /drop               close the connection without any response
    /garbage            write non-HTTP bytes, then close
    /fail-first/N/KEY   the first N requests seen for KEY (process-wide) get
                        a plain immediate 500 (other segments ignored);
                        later ones follow the rest of the path
    /fail-percent/P     after any delay, answer 503 to P percent of the
                        requests, at random
    /fail-body/TEXT     after any delay, answer 500 to requests whose body
                        contains TEXT (url-decoded)
    /big/BYTES          200 with a body of BYTES 'x' bytes (streamed)
    /body/TEXT          use TEXT (url-decoded) as the response body
    /redirect/NNN/URL   respond with status NNN (e.g. 302, 307) and a
                        "Location: URL" header; URL is one url-encoded
                        segment (absolute, or a path such as %2Ftarget)
    /bearer/FILE        401 unless the Authorization header is "Bearer T"
                        for a T listed (one a line) in FILE, one url-encoded
                        segment; checked before the other segments act
    anything else       ignored -> 200 "ok"
"""

import argparse
import http.server
import itertools
import json
import os
import random
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

STOP = threading.Event()          # set on SIGTERM/SIGINT; wakes hang/delay
LOG_LOCK = threading.Lock()
LOG_FILE = None

CONN_IDS = itertools.count(1)     # next() is atomic under the GIL
FAIL_LOCK = threading.Lock()
FAIL_COUNTS = {}                  # fail-first KEY -> requests seen so far
ACTIVE_LOCK = threading.Lock()
ACTIVE = [0]                      # requests being handled now (logged as "active")

CHUNK = 64 * 1024
QUIET_ERRORS = (ConnectionError, BrokenPipeError, socket.timeout, OSError)


def parse_behaviour(path):
    """Turn the path (without query) into a dict describing the response."""
    b = {"status": 200, "delay_ms": 0, "retry_after": None, "hang": False,
         "drop": False, "garbage": False, "fail_first": None, "big": None,
         "body": None, "location": None, "bearer_file": None, "fail_percent": 0,
         "fail_body": None}
    segs = [urllib.parse.unquote(s) for s in path.split("/")]
    i = 0

    def arg(k):
        return segs[i + k] if i + k < len(segs) else None

    def intarg(k):
        v = arg(k)
        try:
            return int(v)
        except (TypeError, ValueError):
            return None

    while i < len(segs):
        s = segs[i]
        if s == "status" and intarg(1) is not None:
            b["status"] = intarg(1); i += 2
        elif s == "delay" and intarg(1) is not None:
            b["delay_ms"] = intarg(1); i += 2
        elif s == "fail-percent" and intarg(1) is not None:
            b["fail_percent"] = intarg(1); i += 2
        elif s == "fail-body" and arg(1) is not None:
            b["fail_body"] = arg(1); i += 2
        elif s == "retry-after" and arg(1) is not None:
            b["retry_after"] = arg(1); i += 2
        elif s == "fail-first" and intarg(1) is not None and arg(2) is not None:
            b["fail_first"] = (intarg(1), arg(2)); i += 3
        elif s == "big" and intarg(1) is not None:
            b["big"] = max(0, intarg(1)); i += 2
        elif s == "redirect" and intarg(1) is not None and arg(2) is not None:
            b["status"] = intarg(1); b["location"] = arg(2); i += 3
        elif s == "bearer" and arg(1) is not None:
            b["bearer_file"] = arg(1); i += 2
        elif s == "body" and arg(1) is not None:
            b["body"] = arg(1); i += 2
        elif s in ("hang", "drop", "garbage"):
            b[s] = True; i += 1
        else:
            i += 1          # /ok, /hook, /a/b, ... are just ignored
    return b


def bearer_accepted(path, authorization):
    """Is authorization "Bearer T" for a token T listed in the file?"""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            tokens = {line.strip() for line in f if line.strip()}
    except OSError:
        return False
    return authorization[len("Bearer "):] in tokens


def log_request(entry):
    line = json.dumps(entry) + "\n"
    with LOG_LOCK:
        if LOG_FILE.closed:         # shutting down; late daemon threads
            return
        LOG_FILE.write(line)
        LOG_FILE.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive; we always send Content-Length
    server_version = "webhook-test-receiver"
    disable_nagle_algorithm = True     # no 40 ms Nagle/delayed-ACK stalls
    wbufsize = CHUNK                   # buffer headers+body into one send()

    def version_string(self):
        return self.server_version

    # wfile is buffered, so "100 Continue" must be pushed out explicitly or
    # libcurl stalls ~1 s on large POST bodies (Expect: 100-continue).
    def handle_expect_100(self):
        ok = super().handle_expect_100()
        self.wfile.flush()
        return ok

    def setup(self):
        super().setup()
        self.conn_id = next(CONN_IDS)

    # Quiet: no per-request logging on stderr.
    def log_message(self, fmt, *args):
        pass

    # Dispatch every method (GET, POST, PUT, PATCH, DELETE, ...) to _handle.
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        # Clients that write headers and body separately without TCP_NODELAY
        # (e.g. Perl's HTTP::Tiny) would otherwise wait ~40 ms per request for
        # our delayed ACK; setting TCP_QUICKACK flushes the pending ACK now.
        if hasattr(socket, "TCP_QUICKACK"):
            try:
                self.connection.setsockopt(socket.IPPROTO_TCP,
                                           socket.TCP_QUICKACK, 1)
            except OSError:
                pass
        if "chunked" in te:
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    break
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # skip trailers up to the empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)      # CRLF after chunk data
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status, body=b"", extra_headers=(), length=None):
        self.send_response(status)
        for k, v in extra_headers:
            self.send_header(k, v)
        no_body = status < 200 or status in (204, 304)
        if not no_body:
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length",
                             str(len(body) if length is None else length))
        self.end_headers()
        if not no_body and self.command != "HEAD" and body:
            self.wfile.write(body)

    def _handle(self):
        with ACTIVE_LOCK:
            ACTIVE[0] += 1
            active = ACTIVE[0]
        try:
            self._respond(active)
        finally:
            with ACTIVE_LOCK:
                ACTIVE[0] -= 1

    def _respond(self, active):
        received = time.time()
        body = self._read_body()
        full_path = self.path
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        entry = {"t": received, "method": self.command, "path": full_path,
                 "headers": headers,
                 "body": body.decode("utf-8", errors="replace"),
                 "conn": self.conn_id, "active": active}
        if hasattr(self.connection, "version"):
            entry["tls"] = tls_summary(self.connection)
        log_request(entry)

        b = parse_behaviour(urllib.parse.urlsplit(full_path).path)

        if b["bearer_file"] is not None and not bearer_accepted(
                b["bearer_file"], headers.get("authorization")):
            self._send(401, b"bearer token refused",
                       [("WWW-Authenticate", 'Bearer error="invalid_token"')])
            return

        if b["fail_first"] is not None:
            n, key = b["fail_first"]
            with FAIL_LOCK:
                seen = FAIL_COUNTS.get(key, 0)
                FAIL_COUNTS[key] = seen + 1
            if seen < n:
                self._send(500, ("fail-first %d/%d %s" % (seen + 1, n, key)).encode())
                return

        if b["hang"]:
            STOP.wait(600)
            self.close_connection = True
            return
        if b["drop"]:
            self.close_connection = True
            return
        if b["garbage"]:
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            self.close_connection = True
            return
        if b["delay_ms"] > 0:
            if STOP.wait(b["delay_ms"] / 1000.0):
                self.close_connection = True
                return
        if b["fail_percent"] > 0 and random.random() * 100 < b["fail_percent"]:
            self._send(503, b"fail-percent")
            return
        if b["fail_body"] is not None and b["fail_body"] in entry["body"]:
            self._send(500, b"fail-body")
            return

        extra = []
        if b["retry_after"] is not None:
            extra.append(("Retry-After", b["retry_after"]))
        if b["location"] is not None:
            extra.append(("Location", b["location"]))

        if b["big"] is not None:
            n = b["big"]
            if n <= 1024 * 1024 or self.command == "HEAD":
                self._send(200, b"x" * n, extra)
                return
            self._send(200, b"", extra, length=n)
            block = b"x" * CHUNK
            while n > 0:
                k = min(n, CHUNK)
                self.wfile.write(block if k == CHUNK else block[:k])
                n -= k
            return

        text = b["body"] if b["body"] is not None else "ok"
        self._send(b["status"], text.encode("utf-8"), extra)


def drain_and_close(sock):
    """After a failed TLS handshake: read what the client still sends (its
    request, under TLS 1.3) until it hangs up, at most 5 s, so that closing
    sends a FIN and no reset that could overtake our TLS alert."""
    raw = None
    try:
        raw = socket.socket(fileno=os.dup(sock.fileno()))
        raw.settimeout(5)
        while raw.recv(CHUNK):
            pass
    except OSError:
        pass
    finally:
        if raw is not None:
            raw.close()
        sock.close()


def tls_summary(conn):
    """The TLS version and the client certificate's CN of a connection."""
    cert = conn.getpeercert() or {}
    cn = None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
    return {"version": conn.version(), "client_cert": cn}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    tls_context = None                 # an ssl.SSLContext with --tls-cert

    # The TLS handshake, in the connection's thread: a client that fails it
    # (no client certificate, an unknown CA) is dropped without a request.
    def finish_request(self, request, client_address):
        if self.tls_context is not None:
            try:
                request.settimeout(30)
                request = self.tls_context.wrap_socket(
                    request, server_side=True, do_handshake_on_connect=False)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                drain_and_close(request)
                return
            try:
                super().finish_request(request, client_address)
            finally:
                request.close()
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        # Client hang-ups and resets are expected in these tests; stay quiet.
        exc = sys.exc_info()[1]
        if isinstance(exc, QUIET_ERRORS):
            return
        super().handle_error(request, client_address)


def main():
    global LOG_FILE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate")
    ap.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    ap.add_argument("--tls-client-ca",
                    help="require a client certificate issued by this PEM CA")
    args = ap.parse_args()
    if not (args.host.startswith("127.") or args.host == "::1"):
        ap.error("--host must be a loopback address")
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        ap.error("--tls-cert and --tls-key go together; --tls-client-ca needs them")
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ctx.set_alpn_protocols(["http/1.1"])
        if args.tls_client_ca:
            ctx.load_verify_locations(args.tls_client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        Server.tls_context = ctx

    LOG_FILE = open(args.log, "a", encoding="utf-8")
    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]

    def on_signal(signum, frame):
        STOP.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=server.serve_forever,
                         kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()

    tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, args.port_file)

    while not STOP.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    with LOG_LOCK:
        LOG_FILE.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
