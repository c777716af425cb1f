/// <reference path="../../packages/server/src/engine/cluster-key-slot.d.ts" />
/**
 * Real Redis topologies for the high-availability tests, all on free ports of 127.0.0.1:
 *
 * - `SentinelSet`: a primary, a replica and three Sentinels (`redis-server --sentinel`). The
 *   replica reaches its primary through a chaos proxy, so a test can stall the replication link
 *   (the primary keeps acknowledging writes the replica never gets) before killing the primary.
 * - `FailoverEndpoint`: one address in front of a primary that moves to the promoted replica, as
 *   managed Redis services move their primary endpoint.
 * - `RedisCluster`: three primaries and three replicas (`--cluster-enabled yes`, created with
 *   `redis-cli --cluster create`), with a primary kill and a slot migration.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import calculateSlot from 'cluster-key-slot'
import { ChaosProxy } from '../../packages/cli/src/chaos/index.js'
import { RedisServer } from './redis-server.js'

const REDIS_CLI = process.env['HOLDFAST_REDIS_CLI'] ?? 'redis-cli'
const run = promisify(execFile)

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Poll `cond` every `everyMs` until it holds; throw naming `what` after `ms`. */
export async function poll(what: string, cond: () => Promise<boolean> | boolean, ms: number, everyMs = 50): Promise<void> {
  const deadline = performance.now() + ms
  let last: unknown
  for (;;) {
    try {
      if (await cond()) return
    } catch (err) {
      last = err
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`)
    await sleep(everyMs)
  }
}

/** redis-cli against `port`: its stdout lines. */
export async function cli(port: number, ...args: string[]): Promise<string[]> {
  const { stdout } = await run(REDIS_CLI, ['-p', String(port), ...args], { timeout: 30_000 })
  return stdout.split('\n').map((l) => l.trim()).filter((l) => l.length > 0)
}

async function info(port: number, section: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const line of await cli(port, 'info', section)) {
    const at = line.indexOf(':')
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 1))
  }
  return out
}

/** Server options that make a primary start a full sync at once (the default waits 5 s). */
const PRIMARY_ARGS = ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0']

export interface SentinelSetOptions {
  /** Sentinel `down-after-milliseconds`. @default 1000 */
  downAfterMs?: number
  /** AOF on every server (appendfsync always). @default false */
  persistence?: boolean
}

export class SentinelSet {
  static readonly MASTER = 'hfmaster'
  readonly primary: RedisServer
  readonly replica: RedisServer
  /** The replica's connection to the primary passes here: stall it to make the replica lag. */
  readonly link: ChaosProxy
  readonly sentinels: RedisServer[]

  private constructor(primary: RedisServer, replica: RedisServer, link: ChaosProxy, sentinels: RedisServer[]) {
    this.primary = primary
    this.replica = replica
    this.link = link
    this.sentinels = sentinels
  }

  static async start(o: SentinelSetOptions = {}): Promise<SentinelSet> {
    const persistence = o.persistence ?? false
    const primary = await RedisServer.start({ persistence, args: PRIMARY_ARGS })
    const link = new ChaosProxy({ target: { host: '127.0.0.1', port: primary.port } })
    await link.start()
    const replica = await RedisServer.start({ persistence, args: [...PRIMARY_ARGS, '--replicaof', '127.0.0.1', String(link.port)] })
    await poll('the replica to sync', async () => (await info(replica.port, 'replication')).get('master_link_status') === 'up', 15_000)
    const conf = [
      `sentinel monitor ${SentinelSet.MASTER} 127.0.0.1 ${primary.port} 2`,
      `sentinel down-after-milliseconds ${SentinelSet.MASTER} ${o.downAfterMs ?? 1000}`,
      // Long at first: a Sentinel "fixes" a replica that follows its primary by another address
      // (ours goes through the proxy) once failover-timeout has passed. killPrimary() shortens it.
      `sentinel failover-timeout ${SentinelSet.MASTER} 600000`,
      `sentinel parallel-syncs ${SentinelSet.MASTER} 1`,
    ]
    const sentinels = await Promise.all([0, 1, 2].map(() => RedisServer.start({ sentinel: conf })))
    const set = new SentinelSet(primary, replica, link, sentinels)
    // A failover needs a majority of Sentinels that know each other, and a replica they know.
    await poll(
      'every Sentinel to know the two others and the replica',
      async () => {
        for (const s of sentinels) {
          const m = await cli(s.port, 'sentinel', 'master', SentinelSet.MASTER)
          const at = m.indexOf('num-other-sentinels')
          const slaves = m.indexOf('num-slaves')
          if (m[at + 1] !== '2' || m[slaves + 1] !== '1') return false
        }
        return true
      },
      20_000,
      100,
    )
    return set
  }

  /** `redis+sentinel://` URL of the three Sentinels. */
  get url(): string {
    return `redis+sentinel://${this.sentinels.map((s) => s.address).join(',')}/${SentinelSet.MASTER}`
  }

  /** Where the Sentinels say the primary is (the first that answers). */
  async primaryPort(): Promise<number> {
    for (const s of this.sentinels) {
      try {
        const [, port] = await cli(s.port, 'sentinel', 'get-master-addr-by-name', SentinelSet.MASTER)
        if (port !== undefined) return Number(port)
      } catch {
        // next one
      }
    }
    throw new Error('no Sentinel answered')
  }

  /** Stop forwarding the primary's replication stream (bytes are dropped): the replica falls behind. */
  stallReplica(): void {
    this.link.setFaults({ downstream: { blackhole: true }, blackholeMode: 'drop' })
  }

  /** The replica's replication offset minus the primary's (negative while it lags). */
  async replicaLagBytes(): Promise<number> {
    const p = Number((await info(this.primary.port, 'replication')).get('master_repl_offset'))
    const r = Number((await info(this.replica.port, 'replication')).get('slave_repl_offset'))
    return r - p
  }

  /**
   * kill -9 the primary; resolves with performance.now() at the kill. Right before, the Sentinels
   * get their usual failover timeout back (no replica is "fixed" while the primary is down: a
   * Sentinel only does that with a sane primary).
   */
  async killPrimary(): Promise<number> {
    await Promise.all(this.sentinels.map((s) => cli(s.port, 'sentinel', 'set', SentinelSet.MASTER, 'failover-timeout', '5000')))
    const at = performance.now()
    await this.primary.kill()
    return at
  }

  /** Wait until the Sentinels name the replica as the primary and it answers as one. */
  async awaitFailover(ms = 20_000): Promise<void> {
    await poll(
      'the Sentinels to promote the replica',
      async () => (await this.primaryPort()) === this.replica.port && (await info(this.replica.port, 'replication')).get('role') === 'master',
      ms,
      50,
    )
  }

  async close(): Promise<void> {
    await this.link.stop()
    await Promise.all([this.primary, this.replica, ...this.sentinels].map((s) => s.close()))
  }
}

/**
 * One address for "the primary", in front of a primary, that a test moves to the promoted
 * replica: the endpoint of a managed Redis service. Connections through it end when the primary
 * dies; new ones reach whatever it points at.
 */
export class FailoverEndpoint {
  #proxy: ChaosProxy
  readonly port: number

  private constructor(proxy: ChaosProxy) {
    this.#proxy = proxy
    this.port = proxy.port
  }

  static async start(targetPort: number): Promise<FailoverEndpoint> {
    const proxy = new ChaosProxy({ target: { host: '127.0.0.1', port: targetPort } })
    await proxy.start()
    return new FailoverEndpoint(proxy)
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Point the address at another server (the old connections are closed). */
  async switchTo(targetPort: number): Promise<void> {
    await this.#proxy.stop()
    const next = new ChaosProxy({ listen: { host: '127.0.0.1', port: this.port }, target: { host: '127.0.0.1', port: targetPort } })
    await next.start()
    this.#proxy = next
  }

  close(): Promise<void> {
    return this.#proxy.stop()
  }
}

export interface ClusterNodeInfo {
  id: string
  port: number
  primary: boolean
  /** The primary's id, for a replica. */
  of: string | undefined
  /** Slot ranges, for a primary. */
  slots: Array<[number, number]>
}

export class RedisCluster {
  readonly servers: RedisServer[]

  private constructor(servers: RedisServer[]) {
    this.servers = servers
  }

  /** Three primaries, three replicas; `--cluster-node-timeout` short so that a failover is quick. */
  static async start(o: { nodeTimeoutMs?: number } = {}): Promise<RedisCluster> {
    const args = [...PRIMARY_ARGS, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(o.nodeTimeoutMs ?? 1000)]
    const servers = await Promise.all(Array.from({ length: 6 }, () => RedisServer.start({ args })))
    const cluster = new RedisCluster(servers)
    await cli(servers[0]?.port as number, '--cluster', 'create', ...servers.map((s) => s.address), '--cluster-replicas', '1', '--cluster-yes')
    await cluster.awaitHealthy()
    return cluster
  }

  /** `redis+cluster://` URL of every node. */
  get url(): string {
    return `redis+cluster://${this.servers.map((s) => s.address).join(',')}`
  }

  get alive(): RedisServer[] {
    return this.servers.filter((s) => s.running)
  }

  /** The cluster as a live node sees it (CLUSTER NODES), without failed nodes. */
  async nodes(): Promise<ClusterNodeInfo[]> {
    const out: ClusterNodeInfo[] = []
    for (const line of await cli(this.alive[0]?.port as number, 'cluster', 'nodes')) {
      const [id, addr, flags, of, , , , , ...slots] = line.split(' ')
      if (id === undefined || addr === undefined || flags === undefined || flags.includes('fail') || flags.includes('noaddr')) continue
      const port = Number(addr.split('@')[0]?.split(':')[1])
      const ranges: Array<[number, number]> = []
      for (const s of slots) {
        if (s.startsWith('[')) continue
        const [a, b] = s.split('-').map(Number)
        if (a !== undefined) ranges.push([a, b ?? a])
      }
      out.push({ id, port, primary: flags.includes('master'), of: of === '-' ? undefined : of, slots: ranges })
    }
    return out
  }

  /** The primary that owns `slot` now. */
  async ownerOf(slot: number): Promise<ClusterNodeInfo> {
    const owner = (await this.nodes()).find((n) => n.primary && n.slots.some(([a, b]) => slot >= a && slot <= b))
    if (owner === undefined) throw new Error(`no primary owns slot ${slot}`)
    return owner
  }

  server(port: number): RedisServer {
    const s = this.servers.find((x) => x.port === port)
    if (s === undefined) throw new Error(`no server on ${port}`)
    return s
  }

  /** Every live node says the cluster is ok and agrees on one primary per slot range. */
  async awaitHealthy(ms = 30_000): Promise<void> {
    await poll(
      'the cluster to be healthy',
      async () => {
        for (const s of this.alive) {
          const state = await cli(s.port, 'cluster', 'info')
          if (!state.includes('cluster_state:ok')) return false
        }
        const check = await run(REDIS_CLI, ['--cluster', 'check', this.alive[0]?.address as string], { timeout: 10_000 }).then(
          (r) => r.stdout,
          (e: { stdout?: string }) => e.stdout ?? '',
        )
        return check.includes('[OK] All 16384 slots covered') && !check.includes('[WARNING]') && !check.includes('[ERR]')
      },
      ms,
      200,
    )
  }

  /** kill -9 the primary owning `slot` (`at`: performance.now() at the kill), then wait until its replica took over. */
  async killPrimaryOf(slot: number, ms = 30_000): Promise<{ killed: number; promoted: number; at: number }> {
    const owner = await this.ownerOf(slot)
    const at = performance.now()
    await this.server(owner.port).kill()
    let promoted = 0
    await poll(
      `a replica to take over slot ${slot}`,
      async () => {
        const now = await this.ownerOf(slot)
        promoted = now.port
        return now.port !== owner.port
      },
      ms,
      100,
    )
    return { killed: owner.port, promoted, at }
  }

  /**
   * Move `count` slots, starting with the lowest, from the primary owning `slot` to another
   * primary, with `redis-cli --cluster reshard` (keys are migrated while clients keep writing).
   */
  async reshard(slot: number, count = 1): Promise<{ from: number; to: number }> {
    const nodes = await this.nodes()
    const from = await this.ownerOf(slot)
    const to = nodes.find((n) => n.primary && n.id !== from.id)
    if (to === undefined) throw new Error('no other primary')
    await cli(from.port, '--cluster', 'reshard', `127.0.0.1:${from.port}`, '--cluster-from', from.id, '--cluster-to', to.id, '--cluster-slots', String(count), '--cluster-yes', '--cluster-pipeline', '100')
    return { from: from.port, to: to.port }
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.close()))
  }
}

/** A channel name (`<prefix><n>`) whose keys (hash tag = the channel) hash to `slot`. */
export function channelInSlot(prefix: string, slot: number): string {
  for (let i = 0; i < 2_000_000; i++) {
    const ch = `${prefix}${i}`
    if (calculateSlot(ch) === slot) return ch
  }
  throw new Error(`no channel ${prefix}<n> in slot ${slot}`)
}

/** The lowest slot a primary owns. */
export function firstSlot(n: ClusterNodeInfo): number {
  return Math.min(...n.slots.map(([a]) => a))
}
