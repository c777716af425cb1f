/**
 * The client SDK against a real `holdfast serve --engine redis` process that is killed with
 * SIGKILL mid-stream and started again on the same port: the subscriber reconnects, resumes its
 * session (same --session-secret), resubscribes with `recovered: true`, and the app sees every
 * publication exactly once, in order — including those the publisher issued while the node was
 * down (queued in its SDK) and one the dead process may have stored without acknowledging it
 * (resent with the same id and deduplicated by Redis, which outlived the process).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { makeClient, REDIS_SERVER, requireBinary, ServeNode, startRedis, until } from './fleet.js'
import { AppLog, assertExactlyOnce, now, Publisher } from '../chaos/history.js'

const CHANNEL = 'feed:restart'
const ms = (x: number): string => `${Math.round(x)} ms`

describe('client SDK: serve --engine redis killed and restarted on the same port', () => {
  it('reconnects, resubscribes with recovered:true, and delivers every publication exactly once', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    const node = await ServeNode.start(t, 'solo', { redisUrl: redis.url })

    // The process takes 1–6 s to start (more on a loaded CI machine); a 2 s backoff cap keeps the
    // reconnect close to the moment it listens, instead of up to 20 s (the default cap) after.
    const subscriber = makeClient(t, node.wsUrl, { maxReconnectDelayMs: 2000 })
    const log = new AppLog(subscriber, 'subscriber', CHANNEL)
    subscriber.connect()
    await log.until('the first subscribe', () => log.subscribes.length === 1, 10_000)
    const pubClient = makeClient(t, node.wsUrl, { maxReconnectDelayMs: 2000 })
    pubClient.connect()
    const publisher = new Publisher(pubClient, 'publisher')
    publisher.start([CHANNEL], 20)
    await log.untilSeq(25, 10_000)

    const killedAt = now()
    const issuedAtKill = publisher.issued
    await node.kill('SIGKILL')
    await node.restart()
    const listeningAt = now()
    const issuedWhileDown = publisher.issued
    await log.until('the resubscribe', () => log.subscribes.length >= 2, 20_000)
    const resub = log.subscribes[1]
    const conn = log.connects[1]
    assert.ok(resub !== undefined && conn !== undefined)
    assert.equal(conn.node, 'solo')
    assert.equal(conn.resumed, true, 'the session survived the process (shared session secret)')
    assert.equal(resub.wasRecovering, true)
    assert.equal(resub.recovered, true, 'history lives in Redis: the restarted process serves the recovery')

    await log.untilSeq(publisher.issued + 25, 10_000)
    const acks = await publisher.settle(15_000)
    await log.untilSeq(acks.length, 10_000)
    assertExactlyOnce(log, acks)
    const queued = acks.filter((a) => a.seq > issuedAtKill && a.seq <= issuedWhileDown).length
    assert.ok(queued >= 10, `publishes issued while the node was down were queued and landed after the restart (${queued})`)
    t.diagnostic(
      `kill -9 → listening again ${ms(listeningAt - killedAt)}; → resubscribed (recovered:true) ${ms(resub.at - killedAt)}, ` +
        `${ms(resub.at - listeningAt)} after the new process listened; ${queued} queued publishes landed once; ${log.pubs.length} delivered exactly once`,
    )
  })

  it('started while Redis is down: it listens, /healthz 200, /readyz 503; when Redis comes up it is ready and serves', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const redis = await startRedis(t)
    await redis.stop()
    // The "redis" config key reaches the engine: a short start wait, so the node listens quickly.
    const begun = now()
    const node = await ServeNode.start(t, 'early', { redisUrl: redis.url, config: { redis: { startTimeoutMs: 300 } } })
    t.diagnostic(`listening ${ms(now() - begun)} after spawn with Redis down`)
    assert.equal((await fetch(`${node.url}/healthz`)).status, 200, 'alive: no reason for an orchestrator to restart it')
    const notReady = await fetch(`${node.url}/readyz`)
    assert.equal(notReady.status, 503)
    assert.deepEqual(await notReady.json(), { status: 'not_ready' })

    await redis.restart()
    const upAt = now()
    await until('/readyz 200 once Redis is up', async () => (await node.readyz()) === 200, 10_000)
    t.diagnostic(`ready ${ms(now() - upAt)} after Redis came up`)
    const client = makeClient(t, node.wsUrl)
    const log = new AppLog(client, 'subscriber', CHANNEL)
    client.connect()
    await log.until('the subscribe', () => log.subscribes.length === 1, 10_000)
    assert.equal((await client.publish(CHANNEL, { pub: 'client', seq: 1, t: now() })).offset, 1)
    await log.untilSeq(1, 5000)
  })
})
