"""Heartbeats (protocol.md: heartbeats) against a server run with a short ping interval.

The ping server runs with `--ping-interval 1s` and `pongTimeoutMs` 3000: a ping interval shorter
than the pong timeout, the case where a client's watchdog (`ping + maxServerPingDelay`) is tightest.
"""

import asyncio
import time

from harness import check

MAX_SERVER_PING_DELAY = 0.5  # the watchdog slack this client uses, in seconds
TIMER_RESOLUTION_MS = 250  # the server's heartbeat timer resolution (protocol.md: heartbeats)


@check("heartbeat_ping_interval", server="ping", codecs=True)
async def ping_interval(ctx):
    conn = await ctx.connect(url=ctx.args.ping_url)
    ping = conn.connect_result["ping"] / 1000
    assert ping == ctx.args.ping_ms / 1000, f"connect result ping {ping}s, server runs {ctx.args.ping_ms} ms"
    started = time.monotonic()
    await asyncio.sleep(ping * 3.5)
    times = [started] + conn.pings
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(conn.pings) >= 3, f"{len(conn.pings)} pings in {ping * 3.5:.1f}s with ping {ping}s"
    assert max(gaps) <= ping + MAX_SERVER_PING_DELAY, f"ping gaps {[round(g, 2) for g in gaps]}s, advertised {ping}s"


@check("heartbeat_idle_client_survives", server="ping")
async def idle_survives(ctx):
    """A client that answers pings and runs the documented watchdog never drops a healthy link."""
    conn = await ctx.connect(url=ctx.args.ping_url)
    watchdog = conn.connect_result["ping"] / 1000 + MAX_SERVER_PING_DELAY
    deadline = time.monotonic() + 5
    worst = 0.0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        worst = max(worst, time.monotonic() - conn.last_frame_at)
        assert not conn.closed.is_set(), f"closed {conn.close_code} {conn.close_reason!r}"
    assert worst <= watchdog, f"{worst:.2f}s without a frame; the watchdog allows {watchdog:.2f}s"


@check("heartbeat_silent_client_closed", server="ping", codecs=True)
async def silent_closed(ctx):
    conn = await ctx.connect(url=ctx.args.ping_url, auto_pong=False)
    await ctx.closed(conn, "heartbeat_timeout", timeout=15, push=False)


@check("heartbeat_silent_client_closed_in_time", server="ping")
async def silent_closed_in_time(ctx):
    """Within `ping + pongTimeout` of the connect reply, plus the server's 250 ms timer resolution
    (the server's pong timeout is passed in)."""
    conn = await ctx.connect(url=ctx.args.ping_url, auto_pong=False)
    started = time.monotonic()
    await conn.closed_with(15)
    took = time.monotonic() - started
    bound = (ctx.args.ping_ms + ctx.args.pong_timeout_ms + TIMER_RESOLUTION_MS) / 1000
    assert took <= bound + MAX_SERVER_PING_DELAY, f"closed after {took:.2f}s; documented bound {bound:.2f}s"
