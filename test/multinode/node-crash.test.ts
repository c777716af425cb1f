/**
 * kill -9 of the node a subscriber is on, while a publisher on another node keeps publishing at a
 * steady rate: the subscriber fails over to a surviving node — by its own URL list, or through
 * nginx with a single URL — resumes its session there (shared --session-secret), and recovers
 * every publication made while it was away: the app sees each publication exactly once, in order.
 * A crashed node holds nothing that matters: positions live in the client, history in Redis.
 */
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { connectClient } from '../../packages/cli/test/helpers.js'
import { makeClient, NGINX, REDIS_SERVER, requireBinary, startFleet, startRedis, type ServeNode } from './fleet.js'
import { Nginx } from './nginx.js'
import { AppLog, assertExactlyOnce, now, Publisher } from '../chaos/history.js'

const CHANNEL = 'feed:prices'
/** 50 publications a second. */
const PUBLISH_EVERY_MS = 20

const ms = (x: number): string => `${Math.round(x)} ms`

/**
 * The scenario both tests share: `subscriber` is connected (to `victim`), `publisherNode` is
 * another node. Kill the victim mid-stream, wait for the failover, keep publishing a while, then
 * check exactly-once delivery. Returns the failover timings.
 */
async function crashAndRecover(
  t: TestContext,
  log: AppLog,
  victim: ServeNode,
  publisherNode: ServeNode,
): Promise<{ disconnected: number; connected: number; recovered: number; missed: number; node: string }> {
  const pubClient = makeClient(t, publisherNode.wsUrl)
  pubClient.connect()
  const publisher = new Publisher(pubClient, 'publisher')
  publisher.start([CHANNEL], PUBLISH_EVERY_MS)
  await log.untilSeq(25, 10_000)

  const killedAt = now()
  await victim.kill('SIGKILL')
  await log.until('the resubscribe on a surviving node', () => log.subscribes.length >= 2, 20_000)
  const resub = log.subscribes[1]
  const conn = log.connects[1]
  assert.ok(resub !== undefined && conn !== undefined)
  assert.notEqual(conn.node, victim.id, 'failed over to a surviving node')
  assert.equal(conn.resumed, true, 'the session resumed on the other node (shared session secret)')
  assert.equal(resub.wasRecovering, true)
  assert.equal(resub.recovered, true, 'recovered from its last position')

  // Keep publishing after the failover, so that recovery and the live feed had to be merged.
  await log.untilSeq(publisher.issued + 25, 10_000)
  const acks = await publisher.settle(15_000)
  await log.untilSeq(acks.length, 10_000)
  assertExactlyOnce(log, acks)

  // Stored while the subscriber was away: delivered only through recovery.
  const missed = acks.filter((a) => a.at > killedAt && a.at < resub.at).length
  assert.ok(missed >= 5, `publications were made while the subscriber was away (${missed})`)
  return {
    disconnected: (log.disconnects[0]?.at ?? Number.NaN) - killedAt,
    connected: conn.at - killedAt,
    recovered: resub.at - killedAt,
    missed,
    node: conn.node,
  }
}

describe('multi-node: kill -9 of the node a client is on', () => {
  it('a client with the URL list [n1, n2, n3] fails over and recovers every missed publication, exactly once', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    const [n1, n2, n3] = await startFleet(t, redis.url, 3)
    assert.ok(n1 !== undefined && n2 !== undefined && n3 !== undefined)

    // Client defaults on purpose (500 ms minimum backoff, full jitter): the timings are what an app gets.
    const subscriber = makeClient(t, [n1.wsUrl, n2.wsUrl, n3.wsUrl])
    const log = new AppLog(subscriber, 'subscriber', CHANNEL)
    subscriber.connect()
    await log.until('the first subscribe', () => log.subscribes.length === 1, 10_000)
    assert.equal(log.node, 'n1', 'the first URL first')

    const r = await crashAndRecover(t, log, n1, n3)
    t.diagnostic(
      `URL list: kill -9 → disconnected ${ms(r.disconnected)}, connected to ${r.node} ${ms(r.connected)}, ` +
        `resubscribed with recovered:true ${ms(r.recovered)}; ${r.missed} publications recovered, 0 lost, 0 duplicated`,
    )
    assert.ok(r.disconnected < 1000, 'a killed process resets its sockets: the client notices at once')
  })

  it('through nginx (one URL), the client lands on a surviving node and recovers; new connections skip the dead node', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server') || !requireBinary(t, NGINX, 'nginx')) return
    const redis = await startRedis(t)
    const nodes = await startFleet(t, redis.url, 3)
    const nginx = await Nginx.start(
      t,
      nodes.map((n) => `127.0.0.1:${n.port}`),
    )

    const subscriber = makeClient(t, nginx.wsUrl)
    const log = new AppLog(subscriber, 'subscriber', CHANNEL)
    subscriber.connect()
    await log.until('the first subscribe through nginx', () => log.subscribes.length === 1, 10_000)
    const victim = nodes.find((n) => n.id === log.node)
    const publisherNode = nodes.find((n) => n.id !== log.node)
    assert.ok(victim !== undefined && publisherNode !== undefined, `nginx sent the client to a node of the fleet (${log.node})`)

    const r = await crashAndRecover(t, log, victim, publisherNode)
    t.diagnostic(
      `nginx: kill -9 of ${victim.id} → disconnected ${ms(r.disconnected)}, connected to ${r.node} ${ms(r.connected)}, ` +
        `resubscribed with recovered:true ${ms(r.recovered)}; ${r.missed} publications recovered, 0 lost, 0 duplicated`,
    )

    // New clients through nginx: none is refused (a refused connect to the dead node is retried on
    // the next one, and then the node is skipped for fail_timeout), none lands on the dead node.
    const fresh = await Promise.all(Array.from({ length: 9 }, () => connectClient(nginx.wsUrl)))
    for (const c of fresh) {
      assert.equal(c.reply.error, undefined, `connected through nginx: ${JSON.stringify(c.reply)}`)
      c.ws.close()
    }
    const probe = await fetch(`${nginx.url}/readyz`)
    assert.equal(probe.status, 200, 'plain requests are balanced over the survivors too')
    assert.match(nginx.errorLog(), /connect\(\) failed \(111: Connection refused\) while connecting to upstream/, 'nginx did meet the dead node')
  })
})
