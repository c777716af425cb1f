// Endpoints from discovery, against real nodes (in process): a discovery URL (`GET /discovery`
// document) or a function replaces the fixed list; the list is fetched before the first attempt,
// again when its ttl runs out (also while connected) and after a reconnect cycle fails; a node
// that left the list is not tried once the list is re-resolved; when discovery is down the last
// known list is used, and with none the client backs off and says why.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, test } from 'node:test'
import { WebSocket } from 'ws'
import { HoldfastClient, type ClientOptions, type HoldfastError } from '../src/index.js'
import { waitFor } from './helpers/fake-server.js'
import { SharedEngine, startNode, type Node } from '../../../test/support/real-server.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

function makeClient(source: ConstructorParameters<typeof HoldfastClient>[0], options: ClientOptions = {}): { client: HoldfastClient; attempts: Array<{ url: string; at: number }>; errors: HoldfastError[] } {
  const client = new HoldfastClient(source, { WebSocket, minReconnectDelayMs: 20, maxReconnectDelayMs: 100, restartJitterMs: 20, ...options })
  const attempts: Array<{ url: string; at: number }> = []
  const errors: HoldfastError[] = []
  client.on('connecting', (e) => attempts.push({ url: e.url, at: Date.now() }))
  client.on('error', (e) => errors.push(e))
  cleanups.push(() => client.close())
  return { client, attempts, errors }
}

async function nodes(n: number): Promise<Node[]> {
  const engine = new SharedEngine()
  const list = await Promise.all(Array.from({ length: n }, () => startNode(engine)))
  cleanups.push(async () => {
    for (const node of list) await node.stop()
    await engine.close()
  })
  return list
}

/** A discovery endpoint serving whatever `doc` holds now (or failing with `status`). */
async function discoveryServer(): Promise<{ url: string; doc: { nodes: Array<{ id: string; url: string }>; ttl: number }; status: number; requests: number }> {
  const state = { url: '', doc: { nodes: [] as Array<{ id: string; url: string }>, ttl: 1 }, status: 200, requests: 0 }
  const server: Server = createServer((_req, res) => {
    state.requests++
    if (state.status !== 200) res.writeHead(state.status).end()
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(state.doc))
  })
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/discovery`
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  )
  return state
}

const until = async (cond: () => boolean, what: string, ms = 5000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('a discovery URL: the client connects to a listed node and asks again when the ttl runs out, while connected too', async () => {
  const [a] = await nodes(1)
  const d = await discoveryServer()
  d.doc = { nodes: [{ id: 'a', url: (a as Node).url }], ttl: 1 }
  const { client, attempts } = makeClient(d.url)
  client.connect()
  await waitFor(client, 'connected')
  assert.deepEqual(attempts.map((x) => x.url), [(a as Node).url])
  assert.equal(d.requests, 1)
  // ttl 1 s; the refresh comes within ttl + jitter (at most 2 s more here).
  await until(() => d.requests >= 2, 'a refresh while connected', 5000)
  assert.equal(client.state, 'connected')
})

test('a node that left the list is not tried once the list is re-resolved; a cycle of failures re-resolves at once', async () => {
  const [a, b] = (await nodes(2)) as [Node, Node]
  let list = [a.url]
  let calls = 0
  const { client, attempts } = makeClient(
    () => {
      calls++
      return list
    },
    { discoveryTtlMs: 60_000 },
  )
  client.connect()
  await waitFor(client, 'connected')
  // The fleet changes: a leaves, b joins. The client's list (ttl 60 s) does not know yet.
  list = [b.url]
  const leftAt = Date.now()
  const reconnected = waitFor(client, 'connected', () => true, 10_000)
  await a.stop()
  await reconnected
  assert.equal(client.state, 'connected')
  const after = attempts.filter((x) => x.at >= leftAt).map((x) => x.url)
  assert.equal(after.at(-1), b.url)
  // The restart advice rotates to the next URL; with a one-URL list that is a full cycle, so the
  // list is resolved again before the next attempt: a is tried at most by that one attempt.
  assert.ok(after.filter((u) => u === a.url).length <= 1, `a was tried again and again: ${after.join(', ')}`)
  assert.ok(calls >= 2)
})

test('discovery down: the last known list is used (and the error said so); with no list yet, attempts back off until it answers', async () => {
  const [a] = (await nodes(1)) as [Node]
  const d = await discoveryServer()
  d.status = 503
  const { client, errors, attempts } = makeClient(d.url)
  client.connect()
  await until(() => errors.length >= 2, 'two failed discoveries')
  assert.equal(client.state === 'connected', false)
  assert.deepEqual(attempts, [], 'no endpoint to try')
  assert.match(errors[0]?.message ?? '', /endpoint discovery failed: GET .* HTTP 503/)
  d.status = 200
  const first = waitFor(client, 'connected', () => true, 10_000)
  d.doc = { nodes: [{ id: 'a', url: a.url }], ttl: 60 }
  await first

  // Now discovery goes down for good and the node drops the connection: the last list still works.
  d.status = 503
  const before = errors.length
  const back = waitFor(client, 'connected', () => true, 10_000)
  for (const conn of (a.hf as unknown as { connections: Set<{ terminate(code: number, reason: string): void }> }).connections) conn.terminate(1006, 'test')
  await back
  assert.ok(errors.slice(before).every((e) => /using the last known list/.test(e.message)), errors.slice(before).map((e) => e.message).join(' | '))
})

test('a malformed or empty discovery answer is an error, not an empty fleet', async () => {
  const d = await discoveryServer()
  d.doc = { nodes: [{ id: 'x', url: 'http://not-a-websocket' }], ttl: 1 }
  const { client, errors } = makeClient(d.url)
  client.connect()
  await until(() => errors.length >= 1, 'an error')
  assert.match(errors[0]?.message ?? '', /lists no ws:\/\/ or wss:\/\/ URL/)
})
