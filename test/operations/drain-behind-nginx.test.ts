/**
 * A drain behind nginx (issue 5): three `holdfast serve --engine redis` nodes behind the
 * deploy/nginx config, clients and publishers connected through nginx only. SIGTERM one node: its
 * /readyz turns 503, nginx stops giving it new connections, its clients are told `restart` over the
 * drain window, reconnect through nginx to the two others and recover there from Redis — every
 * publication exactly once. Uses the multi-node harness (test/multinode/fleet.ts, nginx.ts).
 *
 * What open-source nginx does here (its health checks are passive): it never polls /readyz. A new
 * WebSocket that nginx sends to the draining node is answered 503; `proxy_next_upstream http_503`
 * retries it on another node before the client sees anything, and with `max_fails=1` that 503 also
 * takes the node out of rotation for `fail_timeout`. Once the node has exited, its refused connects
 * are handled the same way (`proxy_next_upstream error`).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { connectClient } from '../../packages/cli/test/helpers.js'
import { NGINX, REDIS_SERVER, requireBinary, startFleet, startRedis, until, within } from '../multinode/fleet.js'
import { Nginx } from '../multinode/nginx.js'
import { OPEN_LIMITS } from './cluster.js'
import { assertDelivered, Publisher, publishRoundRobin, Subscriber } from './delivery.js'

const CLIENTS = 150
const CHANNELS = ['drain-0', 'drain-1', 'drain-2', 'drain-3', 'drain-4']
const DRAIN_MS = 3000

describe('drain behind nginx (Redis engine, 3 nodes)', () => {
  test('SIGTERM one node: /readyz 503, nginx routes new clients to the others, its clients move and recover exactly once', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server') || !requireBinary(t, NGINX, 'nginx')) return
    const redis = await startRedis(t)
    const nodes = await startFleet(t, redis.url, 3, { args: ['--drain-ms', String(DRAIN_MS)], config: OPEN_LIMITS })
    const [n1, n2, n3] = nodes
    assert.ok(n1 !== undefined && n2 !== undefined && n3 !== undefined)
    const nginx = await Nginx.start(t, nodes.map((n) => `127.0.0.1:${n.port}`))

    const subs = Array.from({ length: CLIENTS }, (_, i) => new Subscriber(nginx.wsUrl, CHANNELS[i % CHANNELS.length] as string).connect())
    const pubs = [new Publisher(nginx.wsUrl, 'p0').connect(), new Publisher(nginx.wsUrl, 'p1').connect()]
    t.after(() => [...subs, ...pubs].forEach((c) => c.close()))
    await until('every client subscribed', () => subs.every((s) => s.subscribed) && pubs.every((p) => p.client.state === 'connected'), 30_000)
    // least_conn spreads them: every node holds a share, n1's is what the drain moves.
    const onNode = (id: string): Subscriber[] => subs.filter((s) => s.node === id)
    for (const n of nodes) assert.ok(onNode(n.id).length >= CLIENTS / 6, `node ${n.id} holds ${onNode(n.id).length} clients`)
    const movers = onNode('n1')

    // 2 publishers × 50/s, to the channels in turn.
    const stopPublishing = publishRoundRobin(pubs, CHANNELS, 20)
    await until('publications before the drain', () => pubs.every((p) => p.acked.length >= 20), 10_000)

    const drainAt = performance.now()
    const exited = n1.kill('SIGTERM')
    await until('n1 /readyz to turn 503', async () => (await n1.readyz().catch(() => 0)) === 503, 5_000)
    // New clients while n1 drains: nginx gives none of them to n1.
    const probes = await Promise.all(Array.from({ length: 12 }, () => connectClient(nginx.wsUrl)))
    const probeNodes = probes.map((c) => (c.reply.result as { node?: string } | undefined)?.node)
    for (const c of probes) c.ws.close()
    assert.equal((await n1.readyz().catch(() => 0)), 503, 'the probes ran while n1 was still draining')
    assert.deepEqual(probeNodes.filter((n) => n === 'n1'), [], `no new connection on the draining node (${probeNodes.join(',')})`)
    await within(DRAIN_MS + 15_000, 'n1 to exit after its drain', exited)

    await until('every client back on n2 or n3', () => subs.every((s) => s.subscribed && s.node !== 'n1'), 20_000)
    for (const s of movers) {
      const resub = s.subscribes.find((e) => e.at > drainAt)
      assert.equal(resub?.wasRecovering, true)
      assert.equal(resub?.recovered, true, `recovered on ${s.node}`)
      // The drain closes with `restart`: spread over the window, not all at once.
      const moved = s.connects.find((c) => c.at > drainAt)
      assert.equal(moved?.resumed, true, 'the session resumes on another node (shared --session-secret)')
    }
    const moveTimes = movers.map((s) => (s.connects.find((c) => c.at > drainAt)?.at ?? 0) - drainAt).sort((a, b) => a - b)
    // Closes spread over DRAIN_MS: the reconnects are not one burst at the start of it.
    assert.ok((moveTimes.at(-1) as number) - (moveTimes[0] as number) > DRAIN_MS / 2, `reconnects spread over ${(moveTimes.at(-1) as number) - (moveTimes[0] as number)} ms`)
    // nginx retried 503s and refusals itself: no client saw a failed attempt.
    const retries = subs.reduce((n, s) => n + s.attempts - s.connects.length, 0)
    assert.equal(retries, 0, 'no failed connection attempt')
    // The passive check: the 503 took n1 out of rotation (nginx logs that at warn level).
    assert.match(nginx.errorLog(), new RegExp(`upstream server temporarily disabled.*127\\.0\\.0\\.1:${n1.port}`))

    const acked = pubs.map((p) => p.acked.length)
    await until('publications after the drain', () => pubs.every((p, i) => p.acked.length >= (acked[i] as number) + 20), 10_000)
    await stopPublishing()
    const total = await assertDelivered(subs, pubs)
    process.stderr.write(
      `# drain behind nginx: ${movers.length} clients moved from n1 in ${((moveTimes.at(-1) as number) / 1000).toFixed(1)} s, ` +
        `${total.delivered} deliveries of ${total.expected} expected, ${total.lost} lost, ${total.duplicates} duplicated, ${retries} failed attempts\n`,
    )
  })
})
