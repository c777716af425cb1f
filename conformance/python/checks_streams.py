"""subscribe, publish, recovery, history and idempotency (protocol.md: commands, streams)."""

import base64

from harness import check
from wire import MSGPACK


@check("subscribe_publish_in_order", codecs=True)
async def subscribe_publish(ctx):
    channel = ctx.channel()
    sub = await ctx.connect()
    r = await sub.cmd("subscribe", channel=channel)
    assert r["offset"] == 0 and r["recovered"] is False and r["wasRecovering"] is False, r
    assert r["publications"] == [] and isinstance(r["epoch"], str), r
    pub = await ctx.connect()
    acks = []
    for i in range(1, 51):
        acks.append(await pub.cmd("publish", channel=channel, data={"n": i}, msgId=f"p{i}"))
    assert [a["offset"] for a in acks] == list(range(1, 51)), acks
    assert all(a["epoch"] == r["epoch"] and not a.get("duplicate") for a in acks), acks
    pubs = await sub.pubs_until(channel, 50)
    assert [p["offset"] for p in pubs] == list(range(1, 51))
    assert [p["data"]["n"] for p in pubs] == list(range(1, 51))
    assert all(p["epoch"] == r["epoch"] for p in pubs)
    info = pubs[0].get("info")
    assert info and info["client"] == pub.connect_result["client"], f"pub info {info}"


@check("subscribe_errors", codecs=True)
async def subscribe_errors(ctx):
    conn = await ctx.connect()
    channel = ctx.channel()
    await conn.cmd("subscribe", channel=channel)
    await ctx.error(conn.cmd("subscribe", channel=channel), "already_subscribed")
    await ctx.error(conn.cmd("subscribe", channel="bad name"), "unknown_channel")
    await ctx.error(conn.cmd("subscribe", channel="x" * 256), "unknown_channel")
    await ctx.error(conn.cmd("publish", channel="bad name", data=1, msgId="a"), "unknown_channel")


@check("subscription_limit_128")
async def subscription_limit(ctx):
    conn = await ctx.connect()
    base = ctx.channel()
    replies = await conn.batch([("subscribe", {"channel": f"{base}.{i}"}) for i in range(100)])
    replies += await conn.batch([("subscribe", {"channel": f"{base}.{i}"}) for i in range(100, 128)])
    assert all(isinstance(r, dict) for r in replies), [r for r in replies if not isinstance(r, dict)][:1]
    await ctx.error(conn.cmd("subscribe", channel=f"{base}.x"), "limit_exceeded")


@check("unsubscribe")
async def unsubscribe(ctx):
    conn = await ctx.connect()
    channel = ctx.channel()
    await conn.cmd("subscribe", channel=channel)
    assert (await conn.cmd("unsubscribe", channel=channel)) == {}
    other = await ctx.connect()
    await other.cmd("publish", channel=channel, data="after", msgId="a")
    assert (await conn.cmd("ping")) == {}
    assert conn.pubs(channel) == [], "a publication arrived after unsubscribe"


@check("unsubscribe_not_subscribed")
async def unsubscribe_not_subscribed(ctx):
    conn = await ctx.connect()
    channel = ctx.channel()
    await ctx.error(conn.cmd("unsubscribe", channel=channel), "not_subscribed")
    await conn.cmd("subscribe", channel=channel)
    await conn.cmd("unsubscribe", channel=channel)
    await ctx.error(conn.cmd("unsubscribe", channel=channel), "not_subscribed")
    err = None
    try:
        await conn.cmd("unsubscribe", channel="bad name")
    except Exception as e:
        err = e
    assert err is not None, "unsubscribe of an invalid name succeeded"
    ctx.documented_error(err)
    assert ctx.error_codes[err.code][0] in ("unknown_channel", "not_subscribed"), err


@check("recovery_after_abrupt_disconnect", codecs=True)
async def recovery(ctx):
    channel = ctx.channel()
    user = "rita"
    sub = await ctx.connect(user=user)
    first = await sub.cmd("subscribe", channel=channel)
    pub = await ctx.connect()
    for i in range(1, 11):
        await pub.cmd("publish", channel=channel, data={"n": i}, msgId=f"a{i}")
    got = await sub.pubs_until(channel, 10)
    position = {"offset": got[-1]["offset"], "epoch": got[-1]["epoch"]}
    assert position == {"offset": 10, "epoch": first["epoch"]}, position
    session = sub.connect_result["session"]
    sub.abort()
    for i in range(11, 26):
        await pub.cmd("publish", channel=channel, data={"n": i}, msgId=f"a{i}")
    again = await ctx.connect(user=user, session=session)
    assert again.connect_result["resumed"] is True, again.connect_result
    r = await again.cmd("subscribe", channel=channel, recover=position)
    assert r["recovered"] is True and r["wasRecovering"] is True, r
    assert [p["offset"] for p in r["publications"]] == list(range(11, 26)), r["publications"]
    assert [p["data"]["n"] for p in r["publications"]] == list(range(11, 26))
    assert r["offset"] == 25 and r["epoch"] == first["epoch"], r
    await pub.cmd("publish", channel=channel, data={"n": 26}, msgId="a26")
    live = await again.pubs_until(channel, 1)
    assert [p["offset"] for p in live] == [26], "live publications continue after the recovery"


async def subscribe_after(ctx, published, recover):
    """Publishes `published` times to a new channel, then subscribes a new connection with `recover`."""
    channel = ctx.channel()
    pub = await ctx.connect()
    for i in range(published):
        await pub.cmd("publish", channel=channel, data=i, msgId=f"m{i}")
    conn = await ctx.connect()
    return await conn.cmd("subscribe", channel=channel, recover=recover)


@check("recovery_other_epoch_is_explicit", codecs=True)
async def recovery_other_epoch(ctx):
    r = await subscribe_after(ctx, 3, {"offset": 2, "epoch": "not-this-one"})
    assert r["recovered"] is False and r["wasRecovering"] is True, r
    assert r["publications"] == [] and r["offset"] == 3, r


@check("recovery_from_offset_zero")
async def recovery_from_zero(ctx):
    """Offset 0 belongs to no epoch: a position at 0 recovers into any epoch from offset 1."""
    r = await subscribe_after(ctx, 4, {"offset": 0, "epoch": "whatever"})
    assert r["recovered"] is True, r
    assert [p["offset"] for p in r["publications"]] == [1, 2, 3, 4], r


@check("history", codecs=True)
async def history(ctx):
    channel = ctx.channel()
    conn = await ctx.connect()
    for i in range(1, 8):
        await conn.cmd("publish", channel=channel, data={"n": i}, msgId=f"h{i}")
    latest = await conn.cmd("history", channel=channel, limit=3)
    assert [p["offset"] for p in latest["publications"]] == [5, 6, 7], latest
    assert latest["offset"] == 7
    since = await conn.cmd("history", channel=channel, since={"offset": 2, "epoch": latest["epoch"]}, limit=2)
    assert [p["offset"] for p in since["publications"]] == [3, 4], since
    rev = await conn.cmd("history", channel=channel, limit=2, reverse=True)
    assert [p["offset"] for p in rev["publications"]] == [7, 6], rev
    await ctx.error(
        conn.cmd("history", channel=channel, since={"offset": 2, "epoch": "gone"}), "unrecoverable_position"
    )


@check("idempotent_publish", codecs=True)
async def idempotent_publish(ctx):
    channel = ctx.channel()
    user = "oscar"
    conn = await ctx.connect(user=user)
    await conn.cmd("subscribe", channel=channel)
    first = await conn.cmd("publish", channel=channel, data="once", msgId="op-1")
    assert not first.get("duplicate"), first
    again = await conn.cmd("publish", channel=channel, data="once", msgId="op-1")
    assert again == {**first, "duplicate": True}, (first, again)
    # The id is remembered in the engine, not in the connection: a retry after a reconnect.
    later = await ctx.connect(user=user)
    retry = await later.cmd("publish", channel=channel, data="once", msgId="op-1")
    assert retry["offset"] == first["offset"] and retry["duplicate"] is True, retry
    await conn.cmd("ping")
    assert [p["data"] for p in conn.pubs(channel)] == ["once"], "a duplicate was fanned out"


@check("dedupe_scope_user_and_channel")
async def dedupe_scope(ctx):
    """A msgId is deduplicated per user and channel; the HTTP idempotencyKey is a separate space."""
    channel, other_channel = ctx.channel(), ctx.channel()
    alice = await ctx.connect()
    bob = await ctx.connect()
    a = await alice.cmd("publish", channel=channel, data=1, msgId="same")
    b = await bob.cmd("publish", channel=channel, data=2, msgId="same")
    assert not b.get("duplicate") and b["offset"] == a["offset"] + 1, "another user's msgId deduplicated"
    c = await alice.cmd("publish", channel=other_channel, data=3, msgId="same")
    assert not c.get("duplicate") and c["offset"] == 1, "the same msgId on another channel deduplicated"
    status, body = await ctx.api("publish", {"channel": channel, "data": 4, "idempotencyKey": "same"})
    assert status == 200 and body["duplicate"] is False, (status, body)


@check("publish_errors", codecs=True)
async def publish_errors(ctx):
    conn = await ctx.connect()
    channel = ctx.channel()
    await ctx.error(conn.cmd("publish", channel=channel, data=1, msgId=""), "bad_request")
    await ctx.error(conn.cmd("publish", channel=channel, data=1, msgId="x" * 129), "bad_request")
    deep = 1
    for _ in range(65):
        deep = [deep]
    await ctx.error(conn.cmd("publish", channel=channel, data=deep, msgId="deep"), "bad_request")
    big = "y" * 66_000
    await ctx.error(conn.cmd("publish", channel=channel, data=big, msgId="big"), "payload_too_large")
    ok = await conn.cmd("publish", channel=channel, data=None, msgId="null")
    assert ok["offset"] == 1, ok
    assert (await conn.cmd("publish", channel=channel, data="x" * 128, msgId="m" * 128))["offset"] == 2


@check("bytes_reach_every_codec")
async def bytes_to_json(ctx):
    """MessagePack bytes arrive as bytes in MessagePack and as {"$bytes": base64} in JSON."""
    channel = ctx.channel()
    blob = bytes(range(256))
    js = await ctx.connect(codec="holdfast.v1.json")
    mp = await ctx.connect(codec=MSGPACK)
    await js.cmd("subscribe", channel=channel)
    await mp.cmd("subscribe", channel=channel)
    await mp.cmd("publish", channel=channel, data={"file": blob, "name": "b"}, msgId="bin")
    want_json = {"file": {"$bytes": base64.b64encode(blob).decode()}, "name": "b"}
    assert (await js.pubs_until(channel, 1))[0]["data"] == want_json, js.pubs(channel)[0]["data"]
    assert (await mp.pubs_until(channel, 1))[0]["data"] == {"file": blob, "name": "b"}
    hist = await js.cmd("history", channel=channel)
    assert hist["publications"][0]["data"] == want_json, hist
    hist = await mp.cmd("history", channel=channel)
    assert hist["publications"][0]["data"]["file"] == blob, hist
    # The same form both ways through the JSON of a WebSocket client and of the server API.
    await js.cmd("publish", channel=channel, data={"$bytes": "AQI="}, msgId="bin2")
    assert (await mp.pubs_until(channel, 2))[1]["data"] == b"\x01\x02", mp.pubs(channel)[1]
    status, body = await ctx.api("publish", {"channel": channel, "data": [{"$bytes": "/w=="}]})
    assert status == 200, body
    assert (await mp.pubs_until(channel, 3))[2]["data"] == [b"\xff"], mp.pubs(channel)[2]
    status, page = await ctx.api("history", {"channel": channel})
    assert [p["data"] for p in page["publications"]] == [want_json, {"$bytes": "AQI="}, [{"$bytes": "/w=="}]], page

