"""One holdfast connection, written from docs/protocol.md.

Frames carry one or more messages: JSON lines in text frames (`holdfast.v1.json`) or MessagePack
maps back to back in binary frames (`holdfast.v1.msgpack`). A message with an `id` is a reply, one
with a `type` and no `id` is a push. Replies are matched by id; pushes are kept in arrival order.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import time

import msgpack
import websockets
from websockets.frames import Opcode

JSON = "holdfast.v1.json"
MSGPACK = "holdfast.v1.msgpack"


class Closed(Exception):
    """The connection closed while a reply or a push was awaited."""

    def __init__(self, code, reason, disconnect):
        super().__init__(f"closed {code} {reason!r} (disconnect push: {disconnect})")
        self.code = code
        self.reason = reason
        self.disconnect = disconnect


class ErrorReply(Exception):
    """A command was answered with `{ id, error: { code, message, temporary } }`."""

    def __init__(self, error):
        super().__init__(f"error {error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.temporary = error.get("temporary")
        self.error = error


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint_token(secret, sub, ttl=3600, alg="HS256", **claims):
    """An HS256 (or HS384/HS512) connection token; `ttl=None` leaves out `exp`."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    now = int(time.time())
    payload = {"sub": sub, "iat": now, **claims}
    if ttl is not None:
        payload["exp"] = now + ttl
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), digest).digest()
    return f"{head}.{body}.{b64url(sig)}"


def encode(codec, messages):
    if codec == MSGPACK:
        return b"".join(msgpack.packb(m, use_bin_type=True) for m in messages)
    return "\n".join(json.dumps(m, separators=(",", ":")) for m in messages)


def decode(codec, frame):
    if codec == MSGPACK:
        if isinstance(frame, str):
            raise ValueError("text frame under the MessagePack subprotocol")
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(frame)
        out = list(unpacker)
    else:
        text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
        out = [json.loads(line) for line in text.split("\n") if line != ""]
    for m in out:
        if not isinstance(m, dict):
            raise ValueError(f"message is not a map: {m!r}")
    return out


class Conn:
    """A WebSocket speaking the holdfast protocol; answers the server's pings unless told not to."""

    def __init__(self, ws, codec, auto_pong=True):
        self.ws = ws
        self.codec = codec
        self.auto_pong = auto_pong
        self.next_id = 1
        self.waiting = {}
        self.pushes = []
        self.push_event = asyncio.Event()
        self.frames = 0
        self.pings = []
        self.disconnect = None
        self.close_code = None
        self.close_reason = None
        self.closed = asyncio.Event()
        self.last_frame_at = time.monotonic()
        self.connect_result = None
        self.decode_error = None
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url, codec=JSON, offer=None, compression=None, auto_pong=True):
        protocols = [codec] if offer is None else offer
        ws = await websockets.connect(
            url, subprotocols=protocols or None, compression=compression, max_size=16 * 1024 * 1024,
            open_timeout=5, ping_interval=None, close_timeout=2,
        )
        # The server's choice decides the encoding; no subprotocol means JSON.
        return cls(ws, ws.subprotocol or JSON, auto_pong)

    @classmethod
    async def connected(cls, url, codec=JSON, token=None, session=None, **kw):
        conn = await cls.open(url, codec, **kw)
        fields = {"version": 1, "name": "conformance-py/1"}
        if token is not None:
            fields["token"] = token
        if session is not None:
            fields["session"] = session
        conn.connect_result = await conn.cmd("connect", **fields)
        return conn

    async def _read(self):
        try:
            async for frame in self.ws:
                self.frames += 1
                self.last_frame_at = time.monotonic()
                try:
                    messages = decode(self.codec, frame)
                except Exception as err:  # a frame this client cannot read is a finding
                    self.decode_error = err
                    continue
                for m in messages:
                    self._dispatch(m)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self.closed.set()
            self.push_event.set()
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(Closed(self.close_code, self.close_reason, self.disconnect))

    def _dispatch(self, m):
        if "id" in m:
            fut = self.waiting.pop(m["id"], None)
            if fut is not None and not fut.done():
                if "error" in m:
                    fut.set_exception(ErrorReply(m["error"]))
                else:
                    fut.set_result(m.get("result"))
            return
        if m.get("type") == "ping":
            self.pings.append(time.monotonic())
            if self.auto_pong:
                asyncio.ensure_future(self.send_messages([{"type": "pong"}]))
        elif m.get("type") == "disconnect":
            self.disconnect = m
        self.pushes.append(m)
        self.push_event.set()

    async def send_messages(self, messages):
        try:
            await self.ws.send(encode(self.codec, messages))
        except websockets.ConnectionClosed:
            pass

    async def send_raw(self, data, opcode=None):
        """Sends bytes or text as they are; `opcode` forces a frame type (e.g. text with bad UTF-8)."""
        try:
            if opcode is None:
                await self.ws.send(data)
            else:
                await self.ws.write_frame(True, opcode, data)
        except websockets.ConnectionClosed:
            pass

    def command(self, type_, **fields):
        """Queues a command and returns (its message, the future of its reply)."""
        cid = self.next_id
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        # A refused command nobody awaits (a flood, a frame refused whole) is no error to log.
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        if self.closed.is_set():
            fut.set_exception(Closed(self.close_code, self.close_reason, self.disconnect))
        else:
            self.waiting[cid] = fut
        return {"id": cid, "type": type_, **fields}, fut

    async def cmd(self, type_, timeout=5, **fields):
        msg, fut = self.command(type_, **fields)
        await self.send_messages([msg])
        return await asyncio.wait_for(fut, timeout)

    async def batch(self, commands, timeout=5):
        """Sends several commands in one frame; returns each reply or ErrorReply, in order."""
        msgs, futs = zip(*(self.command(t, **f) for t, f in commands))
        await self.send_messages(list(msgs))
        return await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), timeout)

    async def push(self, pred, timeout=5, start=0):
        """The first push from index `start` on that matches `pred`."""
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.pushes):
                if pred(self.pushes[i]):
                    return self.pushes[i]
                i += 1
            if self.closed.is_set():
                raise Closed(self.close_code, self.close_reason, self.disconnect)
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError(f"no matching push in {timeout}s")
            self.push_event.clear()
            try:
                await asyncio.wait_for(self.push_event.wait(), left)
            except asyncio.TimeoutError:
                pass

    def pubs(self, channel):
        return [p for p in self.pushes if p.get("type") == "pub" and p.get("channel") == channel]

    async def pubs_until(self, channel, count, timeout=5):
        """Waits until `count` pub pushes of `channel` arrived; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.pubs(channel)) < count:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed.is_set():
                raise AssertionError(f"{len(self.pubs(channel))} of {count} publications of {channel} arrived")
            self.push_event.clear()
            try:
                await asyncio.wait_for(self.push_event.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self.pubs(channel)

    async def closed_with(self, timeout=5):
        """Waits for the close; returns (close code, reason, disconnect push or None)."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code, self.close_reason, self.disconnect

    def abort(self):
        """Drops the TCP connection without a close frame, as a network failure would."""
        self.ws.transport.abort()

    async def close(self):
        if not self.closed.is_set():
            await self.ws.close(1000)
        self.reader.cancel()


TEXT = Opcode.TEXT
BINARY = Opcode.BINARY
