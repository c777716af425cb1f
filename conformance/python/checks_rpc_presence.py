"""rpc and its idempotency, presence and join/leave (protocol.md: rpc, presence, pushes).

The RPC server (conformance/rpc-server.ts) registers `echo`, `count` (how many times it ran for
the counter named by its data),
`slow` (answers after 1 s) and `refuse` (throws permission_denied).
"""

import asyncio

from harness import check


@check("rpc", server="rpc", codecs=True)
async def rpc(ctx):
    conn = await ctx.connect(url=ctx.args.rpc_url)
    r = await conn.cmd("rpc", method="echo", data={"q": [1, "two", None]}, msgId="r1")
    assert r == {"data": {"q": [1, "two", None]}}, r
    await ctx.error(conn.cmd("rpc", method="no.such.method", data=1, msgId="r2"), "method_not_found")
    await ctx.error(conn.cmd("rpc", method="refuse", data=1, msgId="r3"), "permission_denied")
    await ctx.error(conn.cmd("rpc", method="echo", data="z" * 66_000, msgId="r4"), "payload_too_large")
    await ctx.error(conn.cmd("rpc", method="echo", data=1, msgId=""), "bad_request")


@check("rpc_idempotent", server="rpc", codecs=True)
async def rpc_idempotent(ctx):
    conn = await ctx.connect(url=ctx.args.rpc_url)
    counter = ctx.channel("counter")
    first = await conn.cmd("rpc", method="count", data=counter, msgId="once")
    again = await conn.cmd("rpc", method="count", data=counter, msgId="once")
    assert first == {"data": {"calls": 1}} and again == first, f"the retry ran the handler again: {first} then {again}"
    other = await conn.cmd("rpc", method="count", data=counter, msgId="twice")
    assert other == {"data": {"calls": 2}}, (first, other)


@check("rpc_in_progress", server="rpc")
async def rpc_in_progress(ctx):
    conn = await ctx.connect(url=ctx.args.rpc_url)
    m1, f1 = conn.command("rpc", method="slow", data=7, msgId="slow-1")
    m2, f2 = conn.command("rpc", method="slow", data=7, msgId="slow-1")
    await conn.send_messages([m1])
    await conn.send_messages([m2])
    await ctx.error(f2, "in_progress", temporary=True)
    assert (await asyncio.wait_for(f1, 5)) == {"data": 7}
    assert (await conn.cmd("rpc", method="slow", data=7, msgId="slow-1")) == {"data": 7}


@check("presence_and_join_leave", codecs=True)
async def presence(ctx):
    channel = ctx.channel("room")
    a = await ctx.connect(user="pam")
    b = await ctx.connect(user="quinn")
    await a.cmd("subscribe", channel=channel)
    await b.cmd("subscribe", channel=channel)
    join = await a.push(lambda p: p.get("type") == "join" and p["info"]["user"] == "quinn")
    assert join["channel"] == channel and join["info"]["client"] == b.connect_result["client"], join
    p = await a.cmd("presence", channel=channel)
    clients = p["clients"]
    assert set(clients) == {a.connect_result["client"], b.connect_result["client"]}, p
    assert {c["user"] for c in clients.values()} == {"pam", "quinn"}, p
    assert (await a.cmd("presence_stats", channel=channel)) == {"clients": 2, "users": 2}
    await b.cmd("unsubscribe", channel=channel)
    leave = await a.push(lambda p: p.get("type") == "leave" and p["info"]["user"] == "quinn")
    assert leave["channel"] == channel, leave


@check("presence_not_available")
async def presence_off(ctx):
    conn = await ctx.connect()
    channel = ctx.channel()
    await conn.cmd("subscribe", channel=channel)
    await ctx.error(conn.cmd("presence", channel=channel), "not_available")
    await ctx.error(conn.cmd("publish", channel=ctx.channel("readonly"), data=1, msgId="x"), "not_available")
