"""connect, tokens, sessions and refresh (protocol.md: connect, sessions, refresh; cli.md: token)."""

import json
import time

from harness import check
from wire import Conn, b64url, mint_token


@check("connect_with_token", codecs=True)
async def connect_with_token(ctx):
    conn = await ctx.connect(user="alice")
    r = conn.connect_result
    for field in ("client", "session", "resumed", "version", "node", "ping"):
        assert field in r, f"connect result lacks {field}: {r}"
    assert r["version"] == 1 and r["resumed"] is False, r
    assert set(r["session"]) >= {"id", "token"}, r["session"]
    assert isinstance(r["ping"], int) and r["ping"] > 0, r
    assert 0 < r["expiresIn"] <= 3600_000, f"expiresIn {r.get('expiresIn')} for a one-hour token"
    limits = r.get("limits")
    if limits is not None:
        for key in ("commandsPerSecond", "commandBurst", "bytesPerSecond", "bytesBurst", "maxPayload", "maxBatch"):
            assert isinstance(limits.get(key), int), f"limits.{key} missing: {limits}"


@check("connect_with_cli_token")
async def connect_with_cli_token(ctx):
    """A token minted by `holdfast token --sub conformance-cli` is accepted by `serve`."""
    if not ctx.args.cli_token:
        raise AssertionError("no --cli-token given")
    conn = await ctx.connect(token=ctx.args.cli_token)
    assert conn.connect_result["client"], conn.connect_result


@check("connect_anonymous", server="ping")
async def connect_anonymous(ctx):
    conn = await ctx.connect(url=ctx.args.ping_url)
    assert conn.connect_result["version"] == 1


@check("connect_without_token_refused", codecs=True)
async def connect_without_token(ctx):
    await ctx.refused_connect({"version": 1}, "unauthorized")


@check("connect_bad_signature_refused")
async def connect_bad_signature(ctx):
    token = mint_token(ctx.args.token_secret + "x", "mallory")
    await ctx.refused_connect({"version": 1, "token": token}, "unauthorized")


@check("connect_expired_token_refused")
async def connect_expired_token(ctx):
    await ctx.refused_connect({"version": 1, "token": ctx.token("bob", ttl=-60)}, "token_expired")


@check("token_hmac_family")
async def token_hmac_family(ctx):
    """--token-secret accepts the HMAC family (HS256, HS384, HS512); an unsigned token is refused."""
    for alg in ("HS384", "HS512"):
        conn = await ctx.connect(token=mint_token(ctx.args.token_secret, "carol", alg=alg))
        assert conn.connect_result["client"], alg
    head = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": "mallory", "exp": int(time.time()) + 60}).encode())
    await ctx.refused_connect({"version": 1, "token": f"{head}.{body}."}, "unauthorized")


@check("connect_unsupported_version")
async def unsupported_version(ctx):
    await ctx.refused_connect({"version": 2, "token": ctx.token("dave")}, "unsupported_version")


@check("command_before_connect", codecs=True)
async def command_before_connect(ctx):
    conn = await ctx.open()
    await conn.send_messages([{"id": 1, "type": "subscribe", "channel": ctx.channel()}])
    await ctx.closed(conn, "bad_request")


@check("second_connect")
async def second_connect(ctx):
    conn = await ctx.connect()
    await conn.send_messages([{"id": 9, "type": "connect", "version": 1, "token": ctx.token("erin")}])
    await ctx.closed(conn, "bad_request")


@check("connect_timeout")
async def connect_timeout(ctx):
    """The main server runs with connectTimeoutMs 1500: no connect in time closes with 4006."""
    conn = await ctx.open()
    started = time.monotonic()
    await ctx.closed(conn, "connect_timeout", timeout=8)
    took = time.monotonic() - started
    assert 1.0 <= took <= 4.0, f"closed after {took:.1f}s, configured 1.5s"


@check("token_expiry_closes_in_time")
async def token_expiry(ctx):
    """A connection whose token runs out without a refresh closes with 4008 at `exp` plus the
    server's clock tolerance (5 s by default), at most one 250 ms tick later; the upper bound
    leaves two seconds for a busy machine (the point is that it closes, and not early)."""
    conn = await ctx.connect(token=ctx.token("frank", ttl=2))
    # `exp` is in whole seconds, and within the tolerance a token a little past it still connects:
    # expiresIn (which counts to `exp` itself) is at most the 2 s asked for, and may be below 0.
    expires_in = conn.connect_result["expiresIn"] / 1000
    assert -ctx.args.clock_tolerance_s < expires_in <= 2, f"expiresIn {expires_in}s for a 2 s token"
    started = time.monotonic()
    await ctx.closed(conn, "token_expired", timeout=15)
    took = time.monotonic() - started
    due = expires_in + ctx.args.clock_tolerance_s
    assert due - 0.5 <= took <= due + 2.0, f"closed {took:.2f}s after connect; due at {due:.2f}s (exp + tolerance)"


@check("refresh")
async def refresh(ctx):
    conn = await ctx.connect(user="grace", token=ctx.token("grace", ttl=60))
    result = await conn.cmd("refresh", token=ctx.token("grace", ttl=7200))
    assert 3600_000 < result["expiresIn"] <= 7200_000, result
    await ctx.error(conn.cmd("refresh", token=ctx.token("grace", ttl=-10)), "token_expired")
    await ctx.error(conn.cmd("refresh", token=mint_token("wrong-secret-wrong-secret-wrong!", "grace")), "unauthorized")
    assert (await conn.cmd("ping")) == {}, "the connection stays open after refused refreshes"


@check("refresh_with_other_users_token")
async def refresh_other_user(ctx):
    conn = await ctx.connect(user="heidi")
    await ctx.error(conn.cmd("refresh", token=ctx.token("ivan")), "unauthorized")
    assert (await conn.cmd("ping")) == {}


@check("session_resume_and_take_over", codecs=True)
async def session_resume(ctx):
    user = "judy"
    first = await ctx.connect(user=user)
    session = first.connect_result["session"]
    second = await ctx.connect(user=user, session=session)
    assert second.connect_result["resumed"] is True, second.connect_result
    assert second.connect_result["session"]["id"] == session["id"]
    await ctx.closed(first, "taken_over")
    bogus = await ctx.connect(user=user, session={"id": session["id"], "token": "forged"})
    assert bogus.connect_result["resumed"] is False, "a forged session token was taken up"
    assert bogus.connect_result["session"]["id"] != session["id"]


@check("connect_ping_command")
async def ping_command(ctx):
    conn = await ctx.connect()
    assert (await conn.cmd("ping")) == {}


@check("compression_offered")
async def compression_offered(ctx):
    """A client offering permessage-deflate works whether or not the server takes it."""
    conn = await Conn.connected(ctx.args.url, token=ctx.token("kim"), compression="deflate")
    ctx.conns.append(conn)
    channel = ctx.channel()
    await conn.cmd("subscribe", channel=channel)
    for i in range(30):
        await conn.cmd("publish", channel=channel, data={"i": i, "pad": "x" * 200}, msgId=f"m{i}")
    pubs = await conn.pubs_until(channel, 30)
    assert [p["offset"] for p in pubs] == list(range(1, 31))

