"""The check registry, the assertions shared by every check, and the documented code tables.

Every close code and error code the server sends must be one of the tables in docs/protocol.md,
which this client reads at start: a code the docs do not list is a finding in itself.
"""

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

from wire import Closed, Conn, ErrorReply

CHECKS = []

# Assertions that hold once the server fixes of issue #15 (ping interval, unsubscribe errors,
# malformed-command replies, token algorithms/grace/refresh, rate-limit pacing) are merged. A
# failure of a check listed here is reported as `pending`, not as a failure; a pass is reported
# as `ok` with a note so that the entry can be removed. Empty this set once the fixes are in.
PENDING_CORE = {
    "heartbeat_ping_interval",
    "heartbeat_idle_client_survives",
    "heartbeat_silent_client_closed_in_time",
    "unsubscribe_not_subscribed",
    "malformed_command_error_reply",
    "invalid_utf8_close_code",
    "refresh_with_other_users_token",
    "rate_limit_pacing_at_the_limits",
}


def check(name, server="main", codecs=False):
    """Registers a check; with `codecs` it runs once per encoding (name suffixed with the codec)."""

    def register(fn):
        if codecs:
            for codec, suffix in (("holdfast.v1.json", "json"), ("holdfast.v1.msgpack", "msgpack")):
                CHECKS.append((f"{name}[{suffix}]", server, fn, codec))
        else:
            CHECKS.append((name, server, fn, "holdfast.v1.json"))
        return fn

    return register


def doc_tables(protocol_md):
    """{close code: name} and {error code: (name, temporary)} from docs/protocol.md's tables."""
    text = open(protocol_md, encoding="utf-8").read()

    def section(title):
        start = text.index(f"## {title}\n")
        end = text.find("\n## ", start + 1)
        return text[start:] if end < 0 else text[start:end]

    close = {int(m[1]): m[2] for m in re.finditer(r"^\| (\d{4}) \| `(\w+)` \|", section("Close codes"), re.M)}
    errors = {
        int(m[1]): (m[2], m[3] == "yes")
        for m in re.finditer(r"^\| (\d{3}) \| `(\w+)` \| (yes|no) \|", section("Error codes"), re.M)
    }
    if len(close) < 15 or len(errors) < 15:
        raise SystemExit(f"could not read the code tables of {protocol_md}")
    return close, errors


class Ctx:
    def __init__(self, args, codec):
        self.args = args
        self.codec = codec
        self.conns = []
        self.close_codes, self.error_codes = doc_tables(args.protocol_doc)

    def channel(self, prefix="conf"):
        return f"{prefix}:{unique()}"

    async def open(self, url=None, codec=None, **kw):
        conn = await Conn.open(url or self.args.url, codec or self.codec, **kw)
        self.conns.append(conn)
        return conn

    async def connect(self, url=None, codec=None, token=None, user=None, **kw):
        """A connected connection; on the main server a token for `user` (a fresh user if None)."""
        url = url or self.args.url
        if token is None and url == self.args.url:
            token = self.token(user or f"u{unique()}")
        conn = await Conn.connected(url, codec or self.codec, token=token, **kw)
        self.conns.append(conn)
        return conn

    def token(self, sub, **kw):
        from wire import mint_token

        return mint_token(self.args.token_secret, sub, **kw)

    async def cleanup(self):
        for conn in self.conns:
            try:
                await conn.close()
            except Exception:
                pass

    # --- assertions -------------------------------------------------------------------------

    async def error(self, awaitable, name, temporary=None):
        """Awaits a command that must fail with the documented error `name`."""
        try:
            result = await awaitable
        except ErrorReply as err:
            self.documented_error(err)
            got = self.error_codes[err.code][0]
            assert got == name, f"expected error {name}, got {got} ({err.error.get('message')})"
            assert isinstance(err.error.get("message"), str), f"error without message: {err.error}"
            if temporary is not None:
                assert err.temporary is temporary, f"{name}: temporary={err.temporary}, expected {temporary}"
            return err
        raise AssertionError(f"expected error {name}, got result {result!r}")

    def documented_error(self, err):
        assert err.code in self.error_codes, f"error code {err.code} is not in the docs' error table"
        assert isinstance(err.temporary, bool), f"error reply without a boolean temporary: {err.error}"

    async def closed(self, conn, name, timeout=5, push=True):
        """Waits for the close and checks it carries the documented close code `name`."""
        code, reason, disconnect = await conn.closed_with(timeout)
        assert code in self.close_codes, f"close code {code} ({reason!r}) is not in the docs' close table"
        got = self.close_codes[code]
        assert got == name, f"expected close {name}, got {code} {got} ({reason!r})"
        if push:
            assert disconnect is not None, f"close {code} without a disconnect push before it"
            assert disconnect.get("code") == code, f"disconnect push {disconnect} differs from the close {code}"
            assert isinstance(disconnect.get("reason"), str), f"disconnect push without a reason: {disconnect}"
        return code, reason

    async def refused_connect(self, fields, name):
        """A `connect` with these fields is refused: a disconnect push, the close `name`, no reply."""
        conn = await self.open()
        msg, fut = conn.command("connect", **fields)
        await conn.send_messages([msg])
        await asyncio.wait([fut, asyncio.ensure_future(conn.closed.wait())], timeout=5,
                                     return_when=asyncio.FIRST_COMPLETED)
        if fut.done() and not fut.exception():
            raise AssertionError(f"connect accepted, expected close {name}")
        await self.closed(conn, name)

    async def http(self, method, path, body=None, headers=None, base=None):
        """(status, headers, parsed JSON or text) of an HTTP request to the server."""
        url = (base or self.args.http) + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if body is not None:
            req.add_header("Content-Type", "application/json")

        def run():
            try:
                with urllib.request.urlopen(req, timeout=5) as res:
                    return res.status, dict(res.headers), res.read()
            except urllib.error.HTTPError as err:
                return err.code, dict(err.headers), err.read()

        status, hdrs, raw = await asyncio.to_thread(run)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return status, {k.lower(): v for k, v in hdrs.items()}, parsed

    async def api(self, method, body=None):
        status, _, parsed = await self.http(
            "POST", f"/api/{method}", body if body is not None else {},
            {"Authorization": f"apikey {self.args.api_key}"},
        )
        return status, parsed


_counter = [0]


def unique():
    _counter[0] += 1
    return f"{int(time.time() * 1000) % 10**8:x}{_counter[0]}"


async def within(seconds, awaitable, what):
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: nothing within {seconds}s") from None


__all__ = ["CHECKS", "PENDING_CORE", "Closed", "Ctx", "ErrorReply", "check", "within"]
