#!/usr/bin/env python3
"""An application backend for `holdfast serve --proxy-url ... --webhook-url ...`, standard library only.

It shows the whole backend proxy contract (docs/proxy.md):
  POST /login              sets a signed `session` cookie (the app's own login)
  POST /holdfast/connect   who is this connection? (from the cookie sent on the WebSocket upgrade)
  POST /holdfast/refresh   extends a connection's expiry
  POST /holdfast/subscribe channel rules: `news` for all, `team:<name>` for its members only
  POST /holdfast/publish   moderation: refuses spam, masks a bad word
  POST /holdfast/rpc       methods `add` and `whoami`
  POST /webhooks           verifies the HMAC signature, drops duplicates by id, keeps the events
  GET  /webhooks/received  the events kept (what a test or a dashboard reads)

Run: python3 backend.py --port 9000 --webhook-secret <same as holdfast's --webhook-secret>
"""
import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP_SECRET = b"example-app-cookie-secret"
TEAMS = {"blue": {"alice", "bob"}, "red": {"carol"}}
BAD_WORD = "darn"
# Error and close codes from holdfast's tables (docs/protocol.md).
UNAUTHORIZED, PERMISSION_DENIED, METHOD_NOT_FOUND, BAD_REQUEST = 101, 103, 104, 107
SESSION_LIFETIME = 3600


def sign_cookie(user):
    mac = hmac.new(APP_SECRET, user.encode(), hashlib.sha256).hexdigest()
    return f"{user}.{mac}"


def user_from_cookie(header):
    """The user of a valid `session` cookie in a Cookie header, or None."""
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name != "session":
            continue
        user, _, mac = value.rpartition(".")
        good = hmac.new(APP_SECRET, user.encode(), hashlib.sha256).hexdigest()
        if user and hmac.compare_digest(mac, good):
            return user
    return None


def verify_webhook(secret, timestamp, signature, body, tolerance=300):
    """X-Holdfast-Signature is v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance or not signature:
        return False
    want = "v1=" + hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, signature)


def result(value):
    return {"result": value}


def error(code, message):
    return {"error": {"code": code, "message": message}}


def connect(req):
    user = user_from_cookie(req["headers"].get("cookie"))
    if user is None:
        return error(UNAUTHORIZED, "log in first")
    return result({"user": user, "info": {"name": user.title()}, "expireAt": int(time.time()) + SESSION_LIFETIME})


def refresh(req):
    return result({"expireAt": int(time.time()) + SESSION_LIFETIME})


def subscribe(req):
    channel, user = req["channel"], req["user"]
    if channel == "news":
        return result({})
    if channel.startswith("team:"):
        team = channel[len("team:"):]
        if user in TEAMS.get(team, set()):
            return result({"info": {"team": team}, "presence": True})
    return error(PERMISSION_DENIED, f"{user} may not join {channel}")


def publish(req):
    data = req["data"]
    text = data.get("text", "") if isinstance(data, dict) else ""
    if "spam" in text:
        return error(PERMISSION_DENIED, "refused by moderation")
    if BAD_WORD in text:
        return result({"data": {**data, "text": text.replace(BAD_WORD, "d**n"), "moderated": True}})
    return result({})


def rpc(req):
    method, data = req["method"], req.get("data")
    if method == "add":
        if not isinstance(data, dict) or not all(isinstance(data.get(k), (int, float)) for k in ("a", "b")):
            return error(BAD_REQUEST, "add takes {a, b}")
        return result({"data": {"sum": data["a"] + data["b"]}})
    if method == "whoami":
        return result({"data": {"user": req["user"], "client": req["client"]}})
    return error(METHOD_NOT_FOUND, f"no method {method}")


EVENTS = {"connect": connect, "refresh": refresh, "subscribe": subscribe, "publish": publish, "rpc": rpc}


class Backend(BaseHTTPRequestHandler):
    # Keep-alive: holdfast keeps a pool of connections open to the backend.
    protocol_version = "HTTP/1.1"
    webhook_secret = ""
    received = []
    seen_ids = set()
    lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, value, headers=()):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, v in headers:
            self.send_header(name, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/webhooks/received":
            with self.lock:
                return self.send_json(200, list(self.received))
        self.send_json(404, {"error": "not found"})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/login":
            user = json.loads(raw or b"{}").get("user", "")
            if not user.isalnum():
                return self.send_json(400, {"error": "user must be alphanumeric"})
            return self.send_json(200, {"user": user}, [("Set-Cookie", f"session={sign_cookie(user)}; HttpOnly; Path=/")])
        if self.path == "/webhooks":
            return self.webhook(raw)
        if self.path.startswith("/holdfast/"):
            handler = EVENTS.get(self.path[len("/holdfast/"):])
            if handler is None:
                return self.send_json(404, {"error": "unknown event"})
            return self.send_json(200, handler(json.loads(raw)))
        self.send_json(404, {"error": "not found"})

    def webhook(self, raw):
        h = self.headers
        if not verify_webhook(self.webhook_secret, h.get("X-Holdfast-Timestamp"), h.get("X-Holdfast-Signature"), raw):
            return self.send_json(401, {"error": "bad signature"})
        event = json.loads(raw)
        with self.lock:
            # At least once: a retried delivery carries the same id.
            if event["id"] not in self.seen_ids:
                self.seen_ids.add(event["id"])
                self.received.append(event)
        self.send_json(200, {})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--webhook-secret", default="")
    args = p.parse_args()
    Backend.webhook_secret = args.webhook_secret
    server = ThreadingHTTPServer((args.host, args.port), Backend)
    server.daemon_threads = True
    print(f"backend listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
