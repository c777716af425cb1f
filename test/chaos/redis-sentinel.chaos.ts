/**
 * Scenario — Redis primary killed under load, with a replica that really lags.
 *
 * A primary, a replica whose replication link passes through a chaos proxy, three Sentinels; two
 * `serve --engine redis` nodes; subscribers on both; two publishers. While they publish, the
 * replication link is stalled (the proxy drops the primary's stream: the primary keeps
 * acknowledging what the replica never gets), for as long as the measurement lagged
 * (700 ms); then the primary is killed with SIGKILL and the Sentinels promote the replica.
 *
 * - durability 'none': publications acknowledged during the stall are gone. The promise is that
 *   nobody is silently told otherwise: every subscriber gets `recovered: false` (the stream moved
 *   to a new epoch because its writer's replication id is not the new primary's), and the
 *   checker finds no silent gap, nothing lost without that notice, nothing duplicated.
 * - durability 'replicated': nothing is acknowledged without the replica, so nothing
 *   acknowledged is lost at all: lost 0, declared loss 0, every resubscribe recovered.
 * - the failover endpoint (one address moved from the primary to the promoted replica, as a
 *   managed Redis service does), durability 'none': as in the first case — the measurement that
 *   found 57 of 600 acknowledged publications silently lost.
 */
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { RedisServer } from '../support/redis-server.js'
import { cli, FailoverEndpoint, poll, SentinelSet } from '../support/redis-topology.js'
import { ChaosProxy, REDIS_SERVER, requireBinary, result, round, sleep } from './harness.js'
import { now, summary } from './history.js'
import { firstAckAfter, redisFailover, reusedOffsets, silentAnomalies, type RedisFailoverOutcome } from './redis-failover.js'

const CHANNELS = ['ha:0', 'ha:1']
const SUBSCRIBERS = 10
const STALL_MS = 700

async function sentinels(t: TestContext): Promise<SentinelSet> {
  const set = await SentinelSet.start()
  t.after(() => set.close())
  return set
}

function report(t: TestContext, name: string, o: RedisFailoverOutcome, extra: Record<string, unknown>): void {
  t.diagnostic(summary(o.report))
  for (const e of o.report.examples) t.diagnostic(e)
  const told = o.logs.filter((l) => l.subscribes.some((s) => s.at > o.faultAt && !s.recovered)).length
  result(t, name, {
    subscribers: o.logs.length,
    published: o.acks.length,
    firstAckAfterKillMs: round(firstAckAfter(o.acks, o.faultAt, name.endsWith('replicated'))),
    readyAfterKillMs: round(o.readyAt - o.faultAt),
    toldRecoveredFalse: told,
    reusedOffsets: reusedOffsets(o.acks),
    declaredLoss: o.report.declaredLoss,
    lost: o.report.lost,
    duplicated: o.report.duplicated,
    silentGaps: o.report.silentGaps,
    ...extra,
  })
}

/**
 * The Sentinel scenario: stall the replica under load, kill the primary, let the Sentinels
 * promote the replica; `then` runs after the promotion (part of the fault).
 */
async function sentinelFailover(t: TestContext, durability: 'none' | 'replicated', then?: (set: SentinelSet) => Promise<void>): Promise<{ o: RedisFailoverOutcome; lag: number }> {
  const set = await sentinels(t)
  let lag = 0
  const o = await redisFailover(t, {
    redisUrl: set.url,
    channels: CHANNELS,
    subscribers: SUBSCRIBERS,
    durability,
    everyMs: 20,
    fault: async () => {
      set.stallReplica()
      await sleep(STALL_MS)
      lag = await set.replicaLagBytes()
      const at = performance.timeOrigin + (await set.killPrimary())
      await set.awaitFailover()
      await then?.(set)
      return at
    },
  })
  return { o, lag }
}

describe('chaos: Redis failover with a lagging replica', () => {
  it("Sentinel, durability 'none': the acknowledged writes the replica missed are announced (recovered:false), never silently skipped", async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const { o, lag } = await sentinelFailover(t, 'none')
    report(t, 'redis-sentinel-none', o, { replicaLagBytes: -lag })
    assert.ok(lag < 0, 'the replica really lagged when the primary died')
    assert.deepEqual(o.errors, [], 'every publish was acknowledged in the end (the SDK retried)')
    assert.equal(silentAnomalies(o.report), 0, `no silent loss: ${summary(o.report)}\n  ${o.report.examples.join('\n  ')}`)
    assert.ok(reusedOffsets(o.acks) > 0, 'the new primary gave out offsets again (in a new epoch)')
    for (const ch of CHANNELS) assert.equal(new Set(o.acks.filter((a) => a.channel === ch).map((a) => a.epoch)).size, 2, `${ch}: a new epoch after the failover`)
    assert.ok(
      o.logs.every((l) => l.subscribes.some((s) => s.at > o.faultAt && !s.recovered)),
      'every subscriber was told recovered:false',
    )
  })

  it("Sentinel, durability 'replicated': no acknowledged publication is lost at all", async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    // The promoted primary needs a replica to acknowledge anything: the old one rejoins.
    const { o, lag } = await sentinelFailover(t, 'replicated', async (set) => {
      await set.primary.restart()
      await cli(set.primary.port, 'replicaof', '127.0.0.1', String(set.replica.port))
      await poll('the old primary to rejoin as a replica', async () => (await cli(set.primary.port, 'role'))[0] === 'slave', 20_000, 100)
    })
    report(t, 'redis-sentinel-replicated', o, { replicaLagBytes: -lag })
    assert.ok(lag < 0, 'the replica really lagged when the primary died')
    assert.deepEqual(o.errors, [])
    assert.equal(silentAnomalies(o.report), 0, `${summary(o.report)}\n  ${o.report.examples.join('\n  ')}`)
    assert.equal(o.report.declaredLoss + o.report.unackedTail, 0, 'nothing acknowledged was lost')
    assert.equal(o.report.unrecovered, 0, 'every resubscribe recovered')
    for (const ch of CHANNELS) assert.equal(new Set(o.acks.filter((a) => a.channel === ch).map((a) => a.epoch)).size, 1, `${ch}: one epoch throughout`)
  })

  it("a failover endpoint moved to the promoted replica, durability 'none': no silent loss", async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const args = ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0']
    const primary = await RedisServer.start({ args })
    t.after(() => primary.close())
    const link = new ChaosProxy({ target: { host: '127.0.0.1', port: primary.port } })
    await link.start()
    t.after(() => link.stop())
    const replica = await RedisServer.start({ args: [...args, '--replicaof', '127.0.0.1', String(link.port)] })
    t.after(() => replica.close())
    await poll('the replica to sync', async () => (await cli(replica.port, 'info', 'replication')).includes('master_link_status:up'), 10_000)
    const endpoint = await FailoverEndpoint.start(primary.port)
    t.after(() => endpoint.close())
    let lag = 0
    const o = await redisFailover(t, {
      redisUrl: endpoint.url,
      channels: CHANNELS,
      subscribers: SUBSCRIBERS,
      durability: 'none',
      everyMs: 20,
      fault: async () => {
        link.setFaults({ downstream: { blackhole: true }, blackholeMode: 'drop' })
        await sleep(STALL_MS)
        const offset = async (port: number, field: string): Promise<number> =>
          Number((await cli(port, 'info', 'replication')).find((l) => l.startsWith(`${field}:`))?.split(':')[1])
        lag = (await offset(replica.port, 'slave_repl_offset')) - (await offset(primary.port, 'master_repl_offset'))
        const at = now()
        await primary.kill()
        // What the service does: promote the replica, then move the endpoint to it.
        await replica.cli('replicaof', 'no', 'one')
        await endpoint.switchTo(replica.port)
        return at
      },
    })
    report(t, 'redis-failover-endpoint', o, { replicaLagBytes: -lag })
    assert.ok(lag < 0, 'the replica really lagged when the primary died')
    assert.deepEqual(o.errors, [])
    assert.equal(silentAnomalies(o.report), 0, `no silent loss: ${summary(o.report)}\n  ${o.report.examples.join('\n  ')}`)
    assert.ok(reusedOffsets(o.acks) > 0, 'the promoted replica gave out offsets again (in a new epoch)')
    assert.ok(
      o.logs.every((l) => l.subscribes.some((s) => s.at > o.faultAt && !s.recovered)),
      'every subscriber was told recovered:false',
    )
  })
})
