"""Frames, codecs, bad input and the rate limit (protocol.md: transport, frames, messages)."""

import asyncio
import json

import msgpack

from harness import check
from wire import BINARY, JSON, MSGPACK, TEXT, Conn


async def connected_raw(ctx, codec=JSON, offer=None):
    """A connection after its connect reply, for sending hand-made frames."""
    conn = await ctx.open(codec=codec, offer=offer)
    conn.connect_result = await conn.cmd("connect", version=1, token=ctx.token("frames"))
    return conn


@check("batch_of_commands_in_one_frame", codecs=True)
async def batch(ctx):
    conn = await ctx.connect()
    channel = ctx.channel()
    replies = await conn.batch(
        [("subscribe", {"channel": channel})]
        + [("publish", {"channel": channel, "data": i, "msgId": f"b{i}"}) for i in range(20)]
        + [("ping", {})]
    )
    assert all(isinstance(r, dict) for r in replies), replies
    assert sorted(r["offset"] for r in replies[1:21]) == list(range(1, 21))
    await conn.pubs_until(channel, 20)


@check("no_subprotocol_speaks_json")
async def no_subprotocol(ctx):
    conn = await ctx.open(codec=JSON, offer=[])
    assert conn.ws.subprotocol is None, conn.ws.subprotocol
    r = await conn.cmd("connect", version=1, token=ctx.token("nosub"))
    assert r["version"] == 1
    unknown = await ctx.open(codec=JSON, offer=["holdfast.v9.cbor"])
    assert unknown.ws.subprotocol is None, unknown.ws.subprotocol
    assert (await unknown.cmd("connect", version=1, token=ctx.token("nosub")))["version"] == 1


@check("subprotocol_negotiated")
async def subprotocol(ctx):
    """One offered protocol is taken; a client offering both gets MessagePack, in either order."""
    for offer, want in (([JSON], JSON), ([MSGPACK], MSGPACK), ([JSON, MSGPACK], MSGPACK), ([MSGPACK, JSON], MSGPACK)):
        conn = await ctx.open(offer=offer)
        assert conn.ws.subprotocol == want, (offer, conn.ws.subprotocol)
        assert (await conn.cmd("connect", version=1, token=ctx.token("sp")))["version"] == 1


@check("json_in_a_binary_frame")
async def json_binary(ctx):
    conn = await ctx.open(codec=JSON)
    token = ctx.token("binjson")
    msg, fut = conn.command("connect", version=1, token=token)
    await conn.send_raw(json.dumps(msg).encode())
    assert (await asyncio.wait_for(fut, 5))["version"] == 1


@check("text_frame_under_msgpack")
async def text_under_msgpack(ctx):
    conn = await connected_raw(ctx, codec=MSGPACK)
    await conn.send_raw(json.dumps({"id": 5, "type": "ping"}))
    await ctx.closed(conn, "bad_request")


@check("bad_frames_close_4007", codecs=True)
async def bad_frames(ctx):
    bad = {
        "empty frame": b"" if ctx.codec == MSGPACK else "",
        "not decodable": b"\xc1" if ctx.codec == MSGPACK else "{not json",
        "not a map": msgpack.packb([1, 2]) if ctx.codec == MSGPACK else "[1,2]",
        "no readable id": msgpack.packb({"type": "ping"}) if ctx.codec == MSGPACK else '{"type":"ping"}',
        "id not a positive integer": (
            msgpack.packb({"id": -1, "type": "ping"}) if ctx.codec == MSGPACK else '{"id":"one","type":"ping"}'
        ),
    }
    if ctx.codec == MSGPACK:
        # A MessagePack map with a __proto__ key does not decode: the frame is rejected whole.
        bad["__proto__ key"] = msgpack.packb({"id": 5, "type": "publish", "channel": "a:b", "msgId": "x", "data": {"__proto__": {"a": 1}}})
    for what, frame in bad.items():
        conn = await connected_raw(ctx, codec=ctx.codec)
        await conn.send_raw(frame)
        try:
            await ctx.closed(conn, "bad_request")
        except AssertionError as err:
            raise AssertionError(f"{what}: {err}") from None


@check("too_many_messages_in_a_frame", codecs=True)
async def too_many(ctx):
    conn = await connected_raw(ctx, codec=ctx.codec)
    limit = conn.connect_result.get("limits", {}).get("maxBatch", 100)
    from wire import encode

    await conn.send_raw(encode(ctx.codec, [{"id": i + 10, "type": "ping"} for i in range(limit + 1)]))
    await ctx.closed(conn, "bad_request")
    assert all(not f.done() for f in conn.waiting.values()), "a command of a refused frame was answered"


@check("frame_too_big_closes_1009")
async def frame_too_big(ctx):
    conn = await connected_raw(ctx)
    await conn.send_raw(json.dumps({"id": 3, "type": "publish", "channel": "a:b", "msgId": "x", "data": "q" * 200_000}))
    await ctx.closed(conn, "message_too_big", push=False)


@check("invalid_utf8_close_code")
async def invalid_utf8(ctx):
    """A text frame that is not UTF-8 is a WebSocket-level error (1007) or bad_request (4007);
    either way the code must be in the documented close table."""
    conn = await connected_raw(ctx)
    await conn.send_raw(b'{"id":3,"type":"ping","x":"\xff\xfe"}', opcode=TEXT)
    code, reason, _ = await conn.closed_with(5)
    assert code in ctx.close_codes, f"close code {code} ({reason!r}) is not in the docs' close table"
    assert ctx.close_codes[code] in ("bad_request", "invalid_frame_payload_data", "invalid_payload"), code


@check("malformed_command_error_reply", codecs=True)
async def malformed(ctx):
    """A command whose id can be read gets a bad_request reply; the connection stays open."""
    conn = await connected_raw(ctx, codec=ctx.codec)
    cases = [
        {"type": "subscribe", "channel": 5},
        {"type": "subscribe"},
        {"type": "publish", "channel": "a:b", "data": 1},
        {"type": "no_such_command"},
        {"type": "history", "channel": "a:b", "limit": "ten"},
    ]
    if ctx.codec == JSON:
        cases.append({"type": "publish", "channel": "a:b", "msgId": "p", "data": {"__proto__": {"a": 1}}})
    for i, fields in enumerate(cases):
        msg, fut = conn.command(fields["type"], **{k: v for k, v in fields.items() if k != "type"})
        await conn.send_messages([msg])
        try:
            await ctx.error(asyncio.wait_for(fut, 5), "bad_request")
        except Exception as err:
            raise AssertionError(f"case {i} {fields}: {err}") from None
    assert (await conn.cmd("ping")) == {}


@check("rate_limit_refuses_past_the_burst")
async def rate_limited(ctx):
    conn = await connected_raw(ctx)
    burst = conn.connect_result["limits"]["commandBurst"]
    futures = []
    for size in (100,) * (burst // 100) + (burst % 100 + 20,):
        msgs, futs = zip(*(conn.command("ping") for _ in range(size)))
        futures += futs
        await conn.send_messages(list(msgs))
    replies = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 5)
    refused = [r for r in replies if not isinstance(r, dict)]
    assert len(refused) >= 10, f"{len(refused)} refused of {burst + 20} sent at once"
    for err in refused:
        ctx.documented_error(err)
        assert ctx.error_codes[err.code][0] == "rate_limited" and err.temporary is True, err.error


@check("rate_limit_pacing_at_the_limits")
async def rate_pacing(ctx):
    """A client that spends the burst, idles, then spends what refilled is never refused."""
    conn = await connected_raw(ctx)
    limits = conn.connect_result["limits"]
    rate, burst = limits["commandsPerSecond"], limits["commandBurst"]
    replies = await conn.batch([("ping", {})] * min(burst, 100))
    if burst > 100:
        replies += await conn.batch([("ping", {})] * (burst - 100))
    await asyncio.sleep(0.5)
    replies += await conn.batch([("ping", {})] * int(rate * 0.5))
    refused = [r for r in replies if not isinstance(r, dict)]
    assert not refused, f"{len(refused)} refused: {refused[0]}"


@check("rate_limit_abuse_closes_4002")
async def rate_abuse(ctx):
    """A connection that goes on sending past its rate is closed with rate_limited (4002)."""
    conn = await connected_raw(ctx)
    for _ in range(100):  # at most 10,000 commands, far past any burst
        if conn.closed.is_set():
            break
        await conn.send_messages([conn.command("ping")[0] for _ in range(100)])
        await asyncio.sleep(0)
    await ctx.closed(conn, "rate_limited", push=False)


@check("msgpack_frame_of_several_maps")
async def msgpack_multi(ctx):
    conn = await Conn.open(ctx.args.url, MSGPACK)
    ctx.conns.append(conn)
    m1, f1 = conn.command("connect", version=1, token=ctx.token("mp"))
    m2, f2 = conn.command("ping")
    await conn.send_raw(msgpack.packb(m1) + msgpack.packb(m2), opcode=BINARY)
    assert (await asyncio.wait_for(f1, 5))["version"] == 1
    assert (await asyncio.wait_for(f2, 5)) == {}
