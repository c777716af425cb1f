/**
 * Endpoints that follow the fleet: `holdfast serve --engine redis --public-url` nodes list the
 * ready nodes of their fleet at `GET /discovery` (from the engine's node registry); clients given
 * that URL instead of a fixed list follow the fleet as it grows (a new node gets clients), shrinks
 * (a draining node leaves the list at once, and no client tries it after its list was refreshed)
 * and loses the node that served discovery (clients keep going from their last known list).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebSocket } from 'ws'
import { HoldfastClient } from '@holdfast/client'
import { freePort } from '../support/ports.js'
import { REDIS_SERVER, requireBinary, ServeNode, startRedis, until } from './fleet.js'

const CLIENTS = 12
/** The nodes' discovery ttl (the default) and the clients' refresh jitter (ttl/10 + 0.5 s). */
const TTL_MS = 10_000
const REFRESHED_WITHIN_MS = TTL_MS + TTL_MS / 10 + 500 + 1500

interface Doc {
  nodes: Array<{ id: string; url: string }>
  ttl: number
}

async function discovery(node: ServeNode): Promise<Doc> {
  const r = await fetch(`${node.url}/discovery`, { signal: AbortSignal.timeout(2000) })
  assert.equal(r.status, 200)
  assert.equal(r.headers.get('access-control-allow-origin'), '*')
  return (await r.json()) as Doc
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('clients follow a fleet that grows and shrinks through GET /discovery; none keeps retrying a node that left', { timeout: 180_000 }, async (t) => {
  if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
  const redis = await startRedis(t)
  const ports = [await freePort(), await freePort(), await freePort()]
  const wsUrl = (i: number) => `ws://127.0.0.1:${ports[i]}/ws`
  const start = (i: number) => ServeNode.start(t, `n${i + 1}`, { redisUrl: redis.url, port: ports[i] as number, args: ['--public-url', wsUrl(i), '--drain-ms', '500'] })
  const [n1, n2] = await Promise.all([start(0), start(1)])
  await until('n1 and n2 in discovery', async () => (await discovery(n1)).nodes.length === 2, 15_000)
  const first = await discovery(n2)
  assert.deepEqual(first, { nodes: [{ id: 'n1', url: wsUrl(0) }, { id: 'n2', url: wsUrl(1) }], ttl: TTL_MS / 1000 })

  const attempts: Array<{ client: number; url: string; at: number }> = []
  const where = new Map<number, string>()
  const errors: string[] = []
  for (let i = 0; i < CLIENTS; i++) {
    const c = new HoldfastClient(`${n1.url}/discovery`, { WebSocket, minReconnectDelayMs: 50, maxReconnectDelayMs: 500, restartJitterMs: 200 })
    c.on('connecting', (e) => attempts.push({ client: i, url: e.url, at: Date.now() }))
    c.on('connected', (e) => where.set(i, e.url))
    c.on('disconnected', () => where.delete(i))
    c.on('error', (e) => errors.push(e.message))
    t.after(() => c.close())
    c.connect()
  }
  await until('every client connected', () => where.size === CLIENTS, 20_000)
  assert.ok([...where.values()].every((u) => u === wsUrl(0) || u === wsUrl(1)))

  // The fleet grows: n3 joins; clients learn it when their list expires (while connected).
  const n3 = await start(2)
  await until('n3 in discovery', async () => (await discovery(n1)).nodes.length === 3, 15_000)
  await sleep(REFRESHED_WITHIN_MS)

  // The fleet shrinks: n2 drains (restart advice to its clients) and leaves discovery at once.
  const onN2 = [...where.entries()].filter(([, u]) => u === wsUrl(1)).map(([i]) => i)
  n2.signal('SIGTERM')
  await until('n2 out of discovery', async () => (await discovery(n1)).nodes.every((n) => n.id !== 'n2'), 5000)
  const leftAt = Date.now()
  await until('every client connected again', () => where.size === CLIENTS && [...where.values()].every((u) => u !== wsUrl(1)), 20_000)
  const movedToN3 = onN2.filter((i) => where.get(i) === wsUrl(2))
  assert.ok(onN2.length === 0 || movedToN3.length > 0, `n2's ${onN2.length} clients all went to n1: none knew n3`)
  await n2.kill('SIGTERM').catch(() => {})

  // Wait until every list was refreshed without n2, then take away the node that serves discovery.
  await sleep(REFRESHED_WITHIN_MS)
  const killedAt = Date.now()
  await n1.kill('SIGKILL')
  await until('every client on n3', () => where.size === CLIENTS && [...where.values()].every((u) => u === wsUrl(2)), 30_000)

  const late = attempts.filter((a) => a.url === wsUrl(1) && a.at > leftAt + REFRESHED_WITHIN_MS)
  assert.deepEqual(late, [], 'no client tried n2 after its list was refreshed')
  // Discovery is down now; the clients' next refresh fails and they keep their list (and their node).
  await until('a refresh that found discovery down', () => errors.some((m) => /endpoint discovery failed \(using the last known list\)/.test(m)), REFRESHED_WITHIN_MS + 5000)
  assert.ok([...where.values()].every((u) => u === wsUrl(2)))
  const afterKill = attempts.filter((a) => a.at > killedAt)
  assert.ok(afterKill.every((a) => a.url !== wsUrl(1)), `a client tried the node that left: ${JSON.stringify(afterKill)}`)
  assert.ok(n3.running)
})
