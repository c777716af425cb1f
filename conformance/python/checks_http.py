"""The server API and the HTTP answers of `holdfast serve` (api.md, cli.md)."""

from harness import check


def error_shape(body):
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and set(body["error"]) >= {"code", "message"}


@check("api_publish_reaches_subscribers", codecs=True)
async def api_publish(ctx):
    channel = ctx.channel()
    conn = await ctx.connect()
    await conn.cmd("subscribe", channel=channel)
    status, body = await ctx.api("publish", {"channel": channel, "data": {"from": "api"}, "idempotencyKey": "k1"})
    assert status == 200 and body["offset"] == 1 and body["duplicate"] is False, (status, body)
    status, again = await ctx.api("publish", {"channel": channel, "data": {"from": "api"}, "idempotencyKey": "k1"})
    assert again == {**body, "duplicate": True}, again
    pubs = await conn.pubs_until(channel, 1)
    assert pubs[0]["data"] == {"from": "api"} and "info" not in pubs[0], pubs[0]
    await conn.cmd("ping")
    assert len(conn.pubs(channel)) == 1, "the API's duplicate was fanned out"


@check("api_send_subscribe_unsubscribe_disconnect", codecs=True)
async def api_control(ctx):
    user = f"api{ctx.channel('u')[2:]}"
    conn = await ctx.connect(user=user)
    channel = ctx.channel()
    assert (await ctx.api("send", {"user": user, "data": {"hello": 1}})) == (200, {})
    msg = await conn.push(lambda p: p.get("type") == "message")
    assert msg["data"] == {"hello": 1}, msg
    assert (await ctx.api("subscribe", {"user": user, "channel": channel})) == (200, {})
    sub = await conn.push(lambda p: p.get("type") == "subscribe")
    assert sub["channel"] == channel and sub["offset"] == 0 and isinstance(sub["epoch"], str), sub
    await ctx.api("publish", {"channel": channel, "data": "server-side"})
    assert (await conn.pubs_until(channel, 1))[0]["data"] == "server-side"
    assert (await ctx.api("unsubscribe", {"user": user, "channel": channel})) == (200, {})
    unsub = await conn.push(lambda p: p.get("type") == "unsubscribe")
    assert unsub["channel"] == channel and ctx.close_codes[unsub["code"]] == "kicked", unsub
    assert (await ctx.api("disconnect", {"user": user, "reason": "conformance"})) == (200, {})
    code, reason = await ctx.closed(conn, "kicked")
    assert reason == "conformance", reason


@check("api_errors")
async def api_errors(ctx):
    status, hdrs, body = await ctx.http("POST", "/api/publish", {"channel": "a:b", "data": 1})
    assert status == 401 and error_shape(body) and body["error"]["code"] == "unauthorized", (status, body)
    status, body = await ctx.api("publish", {"channel": "bad name", "data": 1})
    assert status == 400 and body["error"]["code"] == "unknown_channel", (status, body)
    status, body = await ctx.api("publish", {"channel": "a:b", "data": 1, "idempotencykey": "x"})
    assert status == 400 and body["error"]["code"] == "bad_request", (status, body)
    status, body = await ctx.api("nope", {})
    assert status == 404 and body["error"]["code"] == "method_not_found", (status, body)
    status, body = await ctx.api("history", {"channel": ctx.channel(), "since": {"offset": 3, "epoch": "x"}})
    assert status == 409 and body["error"]["code"] == "unrecoverable_position", (status, body)


@check("http_answers_of_serve")
async def http_answers(ctx):
    status, _, body = await ctx.http("GET", "/healthz")
    assert status == 200 and body == {"status": "ok"}, (status, body)
    status, _, body = await ctx.http("GET", "/readyz")
    assert status == 200 and body == {"status": "ready"}, (status, body)
    status, hdrs, body = await ctx.http("GET", "/ws")
    assert status == 426 and hdrs.get("upgrade", "").lower() == "websocket", (status, hdrs)
    assert error_shape(body) and body["error"]["code"] == "bad_request", body
    status, hdrs, body = await ctx.http("GET", "/api/publish")
    assert status == 405 and hdrs.get("allow") == "POST", (status, hdrs)
    assert error_shape(body) and body["error"]["code"] == "bad_request", body
    status, _, body = await ctx.http("GET", "/no/such/path")
    assert status == 404 and error_shape(body) and body["error"]["code"] == "not_found", (status, body)
    status, _, body = await ctx.http("GET", "/api/openapi.json")
    assert status == 200 and "/api/publish" in body["paths"], status
