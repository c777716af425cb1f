/**
 * Scenario 2 — a blackhole: the network between clients and the node stops carrying anything,
 * with no FIN and no RST (a half-open connection, what a dead NAT entry or a pulled cable
 * looks like). Only heartbeats can find it, and the product promises bounds on both sides:
 *
 * - the server closes a connection that does not answer its ping within
 *   pingInterval + pongTimeout, plus up to two ticks of its timer wheel (250 ms each): the ping
 *   goes out at the first tick after it is due, and the missing pong is noticed at the first tick
 *   after its deadline (docs/protocol.md states ping + pongTimeout; measured maxima reach about
 *   ping + pong + 450 ms, see docs/reliability.md);
 * - the client gives up on a server it has not heard from within pingInterval + maxServerPingDelay.
 *
 * Short intervals (1 s each) keep it quick. Twenty subscribers connect through the proxy at
 * staggered times, so their heartbeats are out of phase; a publisher connected directly keeps
 * publishing. Both detection times are measured for every connection and checked against the
 * bounds; after healing, every subscriber reconnects, recovers what was published meanwhile, and
 * the checker finds nothing lost or duplicated.
 *
 * The gateway runs in the test process here (not `serve`), because its onDisconnect hook gives
 * the server-side close time to the millisecond.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CloseCodes } from '@holdfast/protocol'
import { startServer } from '../../packages/server/test/helpers.js'
import { DEEP_HISTORY, latency, makeClient, OPEN_LIMITS, result, round, sleep, startProxy, until } from './harness.js'
import { AppLog, assertClean, checkHistory, drain, now, Publisher, summary } from './history.js'

const PING_MS = 1000
const PONG_MS = 1000
const MAX_SERVER_PING_DELAY_MS = 1000
/** The server's timer wheel tick (gateway.ts HEARTBEAT_TICK_MS). */
const TICK_MS = 250
/** Event-loop and timer lateness allowed on a busy 2-core machine. */
const SLACK_MS = 500
const SUBSCRIBERS = 20
const CHANNEL = 'blackhole:feed'

describe('chaos: blackhole (half-open connections)', () => {
  it('both sides detect a silent partition within their heartbeat bounds; after healing nothing is lost', async (t) => {
    const serverCloses: Array<{ client: string; code: number; at: number }> = []
    const srv = await startServer({
      pingIntervalMs: PING_MS,
      pongTimeoutMs: PONG_MS,
      ...OPEN_LIMITS,
      ...DEEP_HISTORY,
      onDisconnect: (info) => void serverCloses.push({ client: info.client, code: info.code, at: now() }),
    })
    t.after(() => srv.close())
    const proxy = await startProxy(t, srv.port)
    const viaProxy = `ws://127.0.0.1:${proxy.port}/ws`

    const clientIds = new Set<string>()
    const logs: AppLog[] = []
    for (let i = 0; i < SUBSCRIBERS; i++) {
      // connectTimeoutMs: attempts made during the blackhole open a TCP connection that carries
      // nothing; give up on them quickly so that healing is noticed soon.
      const c = makeClient(t, viaProxy, { maxServerPingDelayMs: MAX_SERVER_PING_DELAY_MS, connectTimeoutMs: 2000, minReconnectDelayMs: 100, maxReconnectDelayMs: 1000 })
      c.on('connected', (e) => clientIds.add(e.client))
      const log = new AppLog(c, `s${i}`, CHANNEL)
      c.connect()
      logs.push(log)
      // Staggered connects put the heartbeats out of phase, so the bounds are met from every phase.
      await sleep(PING_MS / SUBSCRIBERS)
    }
    await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 10_000)))
    const pubClient = makeClient(t, srv.url)
    pubClient.connect()
    const publisher = new Publisher(pubClient, 'p0')
    publisher.start([CHANNEL], 20)
    await Promise.all(logs.map((l) => l.until('live publications', () => l.pubs.length >= 20, 10_000)))
    // A few heartbeats in the steady state first.
    await sleep(2 * PING_MS)

    const cutAt = now()
    proxy.setFaults({ blackhole: true })
    const clientBound = PING_MS + MAX_SERVER_PING_DELAY_MS
    const serverBound = PING_MS + PONG_MS + 2 * TICK_MS
    await Promise.all(logs.map((l) => l.until('the client to give up on the silent server', () => l.disconnects.some((d) => d.at > cutAt), clientBound + 5000)))
    const proxied = (c: { client: string }): boolean => clientIds.has(c.client)
    await until('the server to close every silent connection', () => serverCloses.filter(proxied).length >= SUBSCRIBERS, serverBound + 5000)

    const clientDetect = logs.map((l) => {
      const d = l.disconnects.find((x) => x.at > cutAt)
      assert.ok(d !== undefined)
      assert.equal(d.code, CloseCodes.heartbeat_timeout.code, `${l.client}: its watchdog fired (4005), nothing else ended the connection`)
      return d.at - cutAt
    })
    const serverDetect = serverCloses.filter(proxied).map((c) => {
      assert.equal(c.code, CloseCodes.heartbeat_timeout.code, 'the server closed for a missing pong (4005)')
      return c.at - cutAt
    })
    const client = latency(clientDetect)
    const server = latency(serverDetect)
    t.diagnostic(`client detection ${JSON.stringify(client)} (bound ${clientBound} ms); server ${JSON.stringify(server)} (bound ${serverBound} ms)`)
    assert.ok(client.max <= clientBound + SLACK_MS, `every client gave up within ping + maxServerPingDelay = ${clientBound} ms (+${SLACK_MS}): max ${client.max} ms`)
    assert.ok(server.max <= serverBound + SLACK_MS, `the server closed every silent connection within ping + pong + 2 ticks = ${serverBound} ms (+${SLACK_MS}): max ${server.max} ms`)

    // Heal: every subscriber comes back, recovers what it missed, and the history is clean.
    await sleep(500)
    const healedAt = now()
    proxy.heal()
    await Promise.all(logs.map((l) => l.until('the recovering resubscribe', () => l.subscribes.some((s) => s.at > healedAt && s.recovered), 15_000)))
    const recoveredIn = Math.max(...logs.map((l) => (l.subscribes.find((s) => s.at > healedAt)?.at ?? Number.NaN) - healedAt))
    await sleep(500)
    const acks = await publisher.stop(10_000)
    await drain(logs, acks, 10_000)
    const report = checkHistory(acks, logs)
    t.diagnostic(summary(report))
    result(t, 'blackhole', {
      clientDetectMs: { p50: client.p50, max: client.max, bound: clientBound },
      serverCloseMs: { p50: server.p50, max: server.max, bound: serverBound, documented: PING_MS + PONG_MS },
      allRecoveredAfterHealMs: round(recoveredIn, 0),
      published: acks.length,
      lost: report.lost,
      duplicated: report.duplicated,
    })
    assertClean(report)
  })
})
