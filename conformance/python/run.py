#!/usr/bin/env python3
"""The holdfast conformance client: checks a running gateway against docs/protocol.md.

    python3 conformance/python/run.py --url ws://127.0.0.1:8080/ws --token-secret S --api-key K \\
        --ping-url ws://127.0.0.1:8081/ws --rpc-url ws://127.0.0.1:8082/ws

Prints one line per check (`ok`, `FAIL`, `pending`) and a last line `summary {json}`; exits 1
when a check failed. `npm run test:conformance` starts the servers and runs it.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checks_connect  # noqa: E402,F401  (the imports register the checks)
import checks_frames  # noqa: E402,F401
import checks_heartbeats  # noqa: E402,F401
import checks_http  # noqa: E402,F401
import checks_rpc_presence  # noqa: E402,F401
import checks_streams  # noqa: E402,F401
from harness import CHECKS, PENDING_CORE, Ctx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="WebSocket URL of the main server (with --token-secret)")
    p.add_argument("--token-secret", required=True, help="the main server's --token-secret")
    p.add_argument("--api-key", required=True, help="the main server's --api-key")
    p.add_argument("--http", help="HTTP base of the main server (default: from --url)")
    p.add_argument("--ping-url", required=True, help="an anonymous server with a short ping interval")
    p.add_argument("--ping-ms", type=int, default=1000, help="that server's ping interval")
    p.add_argument("--pong-timeout-ms", type=int, default=3000, help="that server's pong timeout")
    p.add_argument("--clock-tolerance-s", type=float, default=5, help="the main server's jwt.clockToleranceSec")
    p.add_argument("--rpc-url", required=True, help="the RPC server of conformance/rpc-server.ts")
    p.add_argument("--cli-token", help="a token minted by `holdfast token --sub conformance-cli`")
    p.add_argument("--protocol-doc", default=os.path.join(ROOT, "docs", "protocol.md"))
    p.add_argument("--only", action="append", help="run the checks whose name contains this (repeatable)")
    p.add_argument("--parallel", type=int, default=8, help="checks run at once")
    p.add_argument("--timeout", type=float, default=30, help="seconds allowed per check")
    args = p.parse_args(argv)
    if args.http is None:
        args.http = "http" + args.url[2:].rsplit("/ws", 1)[0]
    return args


async def run_one(args, name, fn, codec, gate):
    async with gate:
        ctx = Ctx(args, codec)
        started = time.monotonic()
        try:
            await asyncio.wait_for(fn(ctx), args.timeout)
            outcome, detail = "ok", ""
        except Exception as err:  # every failure is reported with its check's name
            outcome = "fail"
            detail = f"{type(err).__name__}: {err}" if str(err) else traceback.format_exc(limit=3)
        finally:
            await ctx.cleanup()
        took = time.monotonic() - started
        base = name.split("[")[0]
        if base in PENDING_CORE:
            outcome = "pending" if outcome == "fail" else "ok-pending-listed"
        line = {"ok": "ok", "fail": "FAIL", "pending": "pending", "ok-pending-listed": "ok"}[outcome]
        note = " (passes: remove it from PENDING_CORE)" if outcome == "ok-pending-listed" else ""
        print(f"{line} {name} {took:.1f}s{note}{': ' + detail if detail else ''}", flush=True)
        return name, outcome, detail


async def main(argv):
    args = parse_args(argv)
    selected = [c for c in CHECKS if not args.only or any(o in c[0] for o in args.only)]
    gate = asyncio.Semaphore(args.parallel)
    # The slow ones (heartbeats, timeouts, expiry) first, so that they overlap the fast ones.
    slow = ("heartbeat", "timeout", "expiry")
    selected.sort(key=lambda c: 0 if any(s in c[0] for s in slow) else 1)
    results = await asyncio.gather(*(run_one(args, n, fn, codec, gate) for n, _, fn, codec in selected))
    summary = {
        "checks": len(results),
        "passed": sorted(n for n, o, _ in results if o.startswith("ok")),
        "failed": sorted(n for n, o, _ in results if o == "fail"),
        "pending": sorted(n for n, o, _ in results if o == "pending"),
        "pendingPassing": sorted(n for n, o, _ in results if o == "ok-pending-listed"),
    }
    print("summary " + json.dumps(summary), flush=True)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
