#!/usr/bin/env python3
"""Local OAuth2 token endpoint (client credentials grant) for the TAP tests.

Python 3 standard library only.

    python3 test/oauth_server.py --port-file PATH --log PATH --tokens-file PATH
        --client ID:SECRET [--client ...] [--expires-in S] [--max-requests N]

Binds 127.0.0.1 only (ephemeral port), writes the port to --port-file once
listening, and runs until SIGTERM/SIGINT.  Answers at most --max-requests
requests (default 100); later ones get 503.

A POST with Content-Type application/x-www-form-urlencoded, a body
grant_type=client_credentials[&scope=...] and HTTP Basic authentication by
one of the --client pairs (RFC 6749, sections 2.3.1 and 4.4) gets
{"access_token": <new token>, "token_type": "Bearer", "expires_in": S} and
the token is appended to --tokens-file (the receiver's /bearer/FILE accepts
what that file lists).  Wrong credentials get 401 invalid_client, anything
else 400.  Path segments change the behaviour:

    /hang        never answer (up to 120 s, or until shutdown)
    /unlisted    issue the token but do not list it in --tokens-file
    /not-json    answer 200 with a body that is not JSON

Every request is appended to --log as one JSON line before it is answered:
    {"t": ..., "method": ..., "path": ..., "headers": {...}, "body": ...,
     "client_id": <from Basic auth or null>, "status": <answered>,
     "token": <issued or null>}
"""

import argparse
import base64
import http.server
import itertools
import json
import os
import secrets
import signal
import socketserver
import sys
import threading
import time
import urllib.parse

STOP = threading.Event()
LOCK = threading.Lock()
COUNT = itertools.count(1)
ARGS = None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.do_POST()

    def do_POST(self):
        n = next(COUNT)
        length = min(int(self.headers.get("Content-Length") or 0), 65536)
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        segs = urllib.parse.urlsplit(self.path).path.split("/")
        client_id = secret = None
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            try:
                pair = base64.b64decode(auth[6:]).decode()
                cid, _, sec = pair.partition(":")
                client_id = urllib.parse.unquote_plus(cid)
                secret = urllib.parse.unquote_plus(sec)
            except Exception:
                pass
        form = urllib.parse.parse_qs(body, keep_blank_values=True)
        entry = {"t": time.time(), "method": self.command, "path": self.path,
                 "headers": headers, "body": body, "client_id": client_id,
                 "status": None, "token": None}

        if n > ARGS.max_requests:
            status, answer = 503, {"error": "temporarily_unavailable"}
        elif "hang" in segs:
            status, answer = None, None
        elif self.command != "POST" or not headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            status, answer = 400, {"error": "invalid_request"}
        elif ARGS.clients.get(client_id) is None or ARGS.clients[client_id] != secret:
            status, answer = 401, {"error": "invalid_client",
                                   "error_description": "client authentication failed"}
        elif form.get("grant_type") != ["client_credentials"]:
            status, answer = 400, {"error": "unsupported_grant_type"}
        elif "not-json" in segs:
            status, answer = 200, b"<html>not json</html>"
        else:
            token = "tok-%d-%s" % (n, secrets.token_hex(8))
            if "unlisted" not in segs:
                with LOCK, open(ARGS.tokens_file, "a") as f:
                    f.write(token + "\n")
            entry["token"] = token
            status, answer = 200, {"access_token": token, "token_type": "Bearer",
                                   "expires_in": ARGS.expires_in}
        entry["status"] = status
        with LOCK, open(ARGS.log, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if status is None:
            STOP.wait(120)
            self.close_connection = True
            return
        self._send(status, answer)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--tokens-file", required=True)
    ap.add_argument("--client", action="append", default=[], required=True)
    ap.add_argument("--expires-in", type=int, default=3600)
    ap.add_argument("--max-requests", type=int, default=100)
    ARGS = ap.parse_args()
    ARGS.clients = dict(c.split(":", 1) for c in ARGS.client)

    server = Server(("127.0.0.1", 0), Handler)

    def on_signal(signum, frame):
        STOP.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, ARGS.port_file)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
