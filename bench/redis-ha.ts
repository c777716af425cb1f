/// <reference path="../packages/server/src/engine/cluster-key-slot.d.ts" />
/**
 * The Redis engine's numbers for docs/benchmarks.md (section "Redis: one server, Sentinel,
 * Cluster"). Real servers on free ports of this machine, real processes.
 *
 *   node --conditions=source --import tsx bench/redis-ha.ts throughput [--seconds 10] [--channels 64] [--inflight 100]
 *       publications/s and deliveries/s through one Redis and through a 3-shard Cluster (3
 *       primaries, 3 replicas) with sharded and with classic pub/sub: 2 publisher processes
 *       (each one engine, `--inflight` publishes in flight over `--channels` channels) and 2
 *       subscriber processes (each one engine subscribed to every channel).
 *   node --conditions=source --import tsx bench/redis-ha.ts latency [--n 2000]
 *       publish latency p50/p99 of durability 'none' and 'replicated' (a primary with one replica):
 *       sequential publishes, then 64 in flight (replicated publishes share one WAIT per batch).
 *   node --conditions=source --import tsx bench/redis-ha.ts failover [--runs 3]
 *       time from a primary's SIGKILL to the first acknowledged publish after the failover:
 *       Sentinel (none; replicated, with the old primary rejoining as a replica), a failover
 *       endpoint (replica promoted, address moved), a Cluster primary.
 */
import { fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import calculateSlot from 'cluster-key-slot'
import { HoldfastError } from '@holdfast/server'
import { RedisEngine } from '@holdfast/server/redis'
import type { EngineHandler, PublishOptions, StreamOptions } from '@holdfast/server'
import { RedisServer } from '@holdfast/testkit/support/redis-server'
import { cli, FailoverEndpoint, poll, RedisCluster, SentinelSet, sleep } from '@holdfast/testkit/support/redis-topology'

const STREAM: StreamOptions = { historySize: 1000, historyTtlMs: 600_000, streamTtlMs: 3_600_000 }
const SELF = fileURLToPath(import.meta.url)

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  const v = i === -1 ? fallback : Number(process.argv[i + 1])
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`)
  return v
}

const quiet: EngineHandler = { onPublication() {}, onJoinLeave() {}, onControl() {} }

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN
}

function ms(x: number): number {
  return Math.round(x * 100) / 100
}

// ------------------------------------------------------------------ throughput (with worker processes)

interface WorkerArgs {
  role: 'pub' | 'sub'
  url: string
  prefix: string
  channels: string[]
  shardedPubSub: boolean
  inflight: number
}

type FromWorker = { type: 'ready' } | { type: 'count'; n: number }
type ToWorker = { type: 'start' } | { type: 'stop' }

async function worker(a: WorkerArgs): Promise<void> {
  let counting = false
  let n = 0
  const engine = new RedisEngine({ url: a.url, prefix: a.prefix, shardedPubSub: a.shardedPubSub, onError: () => {} })
  await engine.start({
    ...quiet,
    onPublication: () => {
      if (counting) n++
    },
  })
  if (a.role === 'sub') for (const ch of a.channels) await engine.subscribe(ch)
  const send = (m: FromWorker): void => void process.send?.(m)
  let stopped = false
  const loops: Promise<void>[] = []
  process.on('message', (m: ToWorker) => {
    if (m.type === 'start') {
      counting = true
      if (a.role === 'pub') {
        for (let k = 0; k < a.inflight; k++) {
          loops.push(
            (async () => {
              let i = k
              while (!stopped) {
                const ch = a.channels[i++ % a.channels.length] as string
                try {
                  await engine.publish(ch, { k, i }, STREAM)
                  if (counting) n++
                } catch {
                  // counted as not published
                }
              }
            })(),
          )
        }
      }
    } else {
      counting = false
      stopped = true
      void Promise.all(loops).then(async () => {
        send({ type: 'count', n })
        await engine.close()
        process.exit(0)
      })
    }
  })
  send({ type: 'ready' })
}

/** CPU seconds (user + sys) the Redis servers on these ports have used so far. */
async function redisCpu(ports: number[]): Promise<number> {
  let total = 0
  for (const port of ports) {
    for (const line of await cli(port, 'info', 'cpu')) {
      const m = /^used_cpu_(sys|user):([\d.]+)$/.exec(line)
      if (m !== null) total += Number(m[2])
    }
  }
  return total
}

interface ThroughputRow {
  label: string
  publicationsPerSec: number
  deliveriesPerSec: number
  /** Redis CPU time per 1,000 publications, all servers together. */
  redisCpuMsPer1000: number
}

async function throughputRun(label: string, url: string, ports: number[], shardedPubSub: boolean, seconds: number, channelCount: number, inflight: number): Promise<ThroughputRow> {
  const prefix = `b${randomUUID().slice(0, 8)}`
  const channels = Array.from({ length: channelCount }, (_, i) => `bench:${i}`)
  const start = (role: 'pub' | 'sub') => {
    const child = fork(SELF, ['--worker', JSON.stringify({ role, url, prefix, channels, shardedPubSub, inflight } satisfies WorkerArgs)], {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const ready = new Promise<void>((resolve) => child.once('message', () => resolve()))
    const count = new Promise<number>((resolve) => child.on('message', (m: FromWorker) => m.type === 'count' && resolve(m.n)))
    return { child, ready, count }
  }
  const subs = [start('sub'), start('sub')]
  await Promise.all(subs.map((s) => s.ready))
  const pubs = [start('pub'), start('pub')]
  await Promise.all(pubs.map((p) => p.ready))
  const cpuBefore = await redisCpu(ports)
  for (const w of [...subs, ...pubs]) w.child.send({ type: 'start' } satisfies ToWorker)
  await sleep(seconds * 1000)
  // Publishers stop first; subscribers count what arrived within the same window.
  for (const w of [...pubs, ...subs]) w.child.send({ type: 'stop' } satisfies ToWorker)
  const published = (await Promise.all(pubs.map((p) => p.count))).reduce((x, y) => x + y, 0)
  const delivered = (await Promise.all(subs.map((s) => s.count))).reduce((x, y) => x + y, 0)
  const cpu = (await redisCpu(ports)) - cpuBefore
  return {
    label,
    publicationsPerSec: Math.round(published / seconds),
    deliveriesPerSec: Math.round(delivered / seconds),
    redisCpuMsPer1000: Math.round(((cpu * 1000) / published) * 1000 * 10) / 10,
  }
}

async function throughput(): Promise<void> {
  const seconds = arg('seconds', 10)
  const channels = arg('channels', 64)
  const inflight = arg('inflight', 100)
  const rows = []
  const single = await RedisServer.start()
  try {
    rows.push(await throughputRun('one Redis', single.url, [single.port], true, seconds, channels, inflight))
  } finally {
    await single.close()
  }
  const cluster = await RedisCluster.start()
  try {
    const ports = cluster.servers.map((x) => x.port)
    rows.push(await throughputRun('Cluster, 3 shards, sharded pub/sub', cluster.url, ports, true, seconds, channels, inflight))
    rows.push(await throughputRun('Cluster, 3 shards, classic pub/sub', cluster.url, ports, false, seconds, channels, inflight))
  } finally {
    await cluster.close()
  }
  console.log(`throughput: 2 publisher processes x ${inflight} in flight over ${channels} channels, 2 subscriber processes subscribed to all, ${seconds} s`)
  console.table(rows)
}

// ------------------------------------------------------------------ latency

async function latency(): Promise<void> {
  const n = arg('n', 2000)
  const args = ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0']
  const primary = await RedisServer.start({ args })
  const replica = await RedisServer.start({ args: [...args, '--replicaof', '127.0.0.1', String(primary.port)] })
  const rows = []
  try {
    await poll('the replica to sync', async () => (await cli(replica.port, 'info', 'replication')).includes('master_link_status:up'), 10_000)
    const engine = new RedisEngine({ url: primary.url, prefix: `l${randomUUID().slice(0, 8)}`, onError: () => {} })
    await engine.start(quiet)
    for (const durability of ['none', 'replicated'] as const) {
      const opts: PublishOptions = { ...STREAM, durability }
      const ch = `lat:${durability}`
      for (let i = 0; i < 200; i++) await engine.publish(ch, i, opts) // warm-up
      const times: number[] = []
      for (let i = 0; i < n; i++) {
        const t = performance.now()
        await engine.publish(ch, { i }, opts)
        times.push(performance.now() - t)
      }
      times.sort((a, b) => a - b)
      // 64 in flight: throughput, and the latency each publisher sees.
      const concurrent: number[] = []
      const started = performance.now()
      await Promise.all(
        Array.from({ length: 64 }, async (_, k) => {
          for (let i = 0; i < n / 64; i++) {
            const t = performance.now()
            await engine.publish(`${ch}:c`, { k, i }, opts)
            concurrent.push(performance.now() - t)
          }
        }),
      )
      const seconds = (performance.now() - started) / 1000
      concurrent.sort((a, b) => a - b)
      rows.push({
        durability,
        'sequential p50 ms': ms(percentile(times, 0.5)),
        'sequential p99 ms': ms(percentile(times, 0.99)),
        '64 in flight p50 ms': ms(percentile(concurrent, 0.5)),
        '64 in flight p99 ms': ms(percentile(concurrent, 0.99)),
        '64 in flight publications/s': Math.round(concurrent.length / seconds),
      })
    }
    await engine.close()
  } finally {
    await primary.close()
    await replica.close()
  }
  console.log(`publish latency: one primary and one replica on this machine, ${n} publishes per run`)
  console.table(rows)
}

// ------------------------------------------------------------------ failover

/**
 * Publish one at a time, each retried with its id until acknowledged. `acks` holds, per ack, when
 * it arrived and when the attempt that got it began: a publish already stored when the primary
 * died may be acknowledged a moment later, and must not count as "after the failover".
 */
function steadyPublisher(engine: RedisEngine, channel: string, durability: 'none' | 'replicated'): { acks: Array<{ at: number; attemptAt: number }>; stop: () => Promise<void> } {
  const acks: Array<{ at: number; attemptAt: number }> = []
  let stopped = false
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      for (;;) {
        const attemptAt = performance.now()
        try {
          await engine.publish(channel, { i }, { ...STREAM, durability, idempotencyKey: `k${i}` })
          acks.push({ at: performance.now(), attemptAt })
          break
        } catch (err) {
          if (stopped || !(err instanceof HoldfastError)) return
          await sleep(10)
        }
      }
      await sleep(5)
    }
  })()
  return {
    acks,
    stop: async () => {
      stopped = true
      await loop
    },
  }
}

const FAST = { commandTimeoutMs: 1000, healthCheckIntervalMs: 250, reconnectBaseMs: 50, reconnectMaxMs: 300, replicaWaitMs: 300 }

/** `kill` resolves with performance.now() at the SIGKILL (what it does before does not count). */
async function measureFailover(url: string, channel: string, durability: 'none' | 'replicated', kill: () => Promise<number>): Promise<number> {
  const engine = new RedisEngine({ url, prefix: `f${randomUUID().slice(0, 8)}`, onError: () => {}, ...FAST })
  await engine.start(quiet)
  const p = steadyPublisher(engine, channel, durability)
  await poll('steady publishing', () => p.acks.length >= 50, 20_000)
  const killedAt = await kill()
  const after = (): { at: number } | undefined => p.acks.find((a) => a.attemptAt > killedAt)
  await poll('an acknowledged publish after the failover', () => after() !== undefined, 60_000, 10)
  const first = (after() as { at: number }).at - killedAt
  await p.stop()
  await engine.close()
  return first
}

async function failover(): Promise<void> {
  const runs = arg('runs', 3)
  const results: Record<string, number[]> = {}
  const add = (k: string, v: number): void => void (results[k] ??= []).push(Math.round(v))
  for (let r = 0; r < runs; r++) {
    for (const durability of ['none', 'replicated'] as const) {
      const set = await SentinelSet.start()
      try {
        const engineUrl = set.url
        const first = await measureFailover(engineUrl, 'fo', durability, async () => {
          const at = await set.killPrimary()
          if (durability === 'replicated') {
            // Nothing is acknowledged without a replica: the old primary rejoins as one.
            await set.awaitFailover()
            await set.primary.restart()
            await cli(set.primary.port, 'replicaof', '127.0.0.1', String(set.replica.port))
          }
          return at
        })
        add(`Sentinel, ${durability}${durability === 'replicated' ? ' (old primary restarted as replica)' : ''}`, first)
      } finally {
        await set.close()
      }
    }
    {
      const args = ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0']
      const primary = await RedisServer.start({ args })
      const replica = await RedisServer.start({ args: [...args, '--replicaof', '127.0.0.1', String(primary.port)] })
      const endpoint = await FailoverEndpoint.start(primary.port)
      try {
        await poll('the replica to sync', async () => (await cli(replica.port, 'info', 'replication')).includes('master_link_status:up'), 10_000)
        const first = await measureFailover(endpoint.url, 'fo', 'none', async () => {
          const at = performance.now()
          await primary.kill()
          await replica.cli('replicaof', 'no', 'one')
          await endpoint.switchTo(replica.port)
          return at
        })
        add('failover endpoint (promote + switch at once), none', first)
      } finally {
        await endpoint.close()
        await primary.close()
        await replica.close()
      }
    }
    {
      const cluster = await RedisCluster.start()
      try {
        const first = await measureFailover(cluster.url, 'fo', 'none', async () => (await cluster.killPrimaryOf(calculateSlot('fo'))).at)
        add('Cluster primary (cluster-node-timeout 1000 ms), none', first)
      } finally {
        await cluster.close()
      }
    }
  }
  console.log(`primary SIGKILL → first acknowledged publish, ms (${runs} runs; Sentinel down-after-milliseconds 1000)`)
  console.table(Object.entries(results).map(([setup, v]) => ({ setup, runs: v.join(', '), min: Math.min(...v), max: Math.max(...v) })))
}

async function main(): Promise<void> {
  const w = process.argv.indexOf('--worker')
  if (w !== -1) return worker(JSON.parse(process.argv[w + 1] as string) as WorkerArgs)
  const what = process.argv[2]
  if (what === 'throughput') return throughput()
  if (what === 'latency') return latency()
  if (what === 'failover') return failover()
  throw new Error('usage: bench/redis-ha.ts throughput | latency | failover')
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
