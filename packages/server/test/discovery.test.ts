// GET /discovery (the holdfastDiscovery Fastify plugin): the fleet's nodes that advertise a
// publicUrl and are not draining, from the engine's registry, with a ttl; a draining node leaves
// the list at once; a registry that cannot be read is a 503, never an empty list.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { createHoldfast } from '../src/index.js'
import { holdfastDiscovery } from '../src/fastify-plugin.js'
import { SharedEngine } from '../../../test/support/real-server.js'

test('lists the nodes with a publicUrl that are not draining; a drain removes the node at once', async (t) => {
  // One engine (registry) for three nodes, as Redis would be.
  const engine = new SharedEngine()
  const a = createHoldfast({ logger: false, engine: engine.forNode(), nodeId: 'a', publicUrl: 'wss://a.example/ws' })
  const b = createHoldfast({ logger: false, engine: engine.forNode(), nodeId: 'b', publicUrl: 'wss://b.example/ws' })
  const hidden = createHoldfast({ logger: false, engine: engine.forNode(), nodeId: 'c' })
  t.after(async () => {
    await Promise.all([a.close({ drainMs: 0 }), b.close({ drainMs: 0 }), hidden.close({ drainMs: 0 })])
    await engine.close()
  })
  await Promise.all([a.ready(), b.ready(), hidden.ready()])
  const app = Fastify()
  await app.register(holdfastDiscovery, { holdfast: a, ttlMs: 7000 })
  t.after(() => app.close())
  const until = async (want: string[]): Promise<void> => {
    const deadline = Date.now() + 3000
    for (;;) {
      // One registry read serves a second of requests; ask past it.
      const res = await app.inject({ method: 'GET', url: '/discovery' })
      const ids = (res.json() as { nodes: Array<{ id: string }> }).nodes.map((n) => n.id)
      if (JSON.stringify(ids) === JSON.stringify(want)) return
      if (Date.now() > deadline) assert.fail(`discovery lists ${ids.join(',')}, not ${want.join(',')}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  await until(['a', 'b'])
  const res = await app.inject({ method: 'GET', url: '/discovery' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['access-control-allow-origin'], '*')
  assert.equal(res.headers['cache-control'], 'max-age=7')
  assert.deepEqual(res.json(), { nodes: [{ id: 'a', url: 'wss://a.example/ws' }, { id: 'b', url: 'wss://b.example/ws' }], ttl: 7 })
  void b.close({ drainMs: 200 })
  await until(['a'])
})

test('a registry that cannot be read answers 503, not an empty fleet', async (t) => {
  const a = createHoldfast({ logger: false, publicUrl: 'ws://127.0.0.1:1/ws' })
  t.after(() => a.close({ drainMs: 0 }))
  await a.ready()
  ;(a as unknown as { nodes(): Promise<never> }).nodes = () => Promise.reject(new Error('redis is down'))
  const app = Fastify()
  await app.register(holdfastDiscovery, { holdfast: a })
  t.after(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/discovery' })
  assert.equal(res.statusCode, 503)
  assert.equal(res.headers['retry-after'], '1')
  assert.equal((res.json() as { error: { code: string } }).error.code, 'engine_unavailable')
})

test('publicUrl must be a ws:// or wss:// URL', () => {
  assert.throws(() => createHoldfast({ logger: false, publicUrl: 'http://a.example/ws' }), /option "publicUrl" must be a ws:\/\/ or wss:\/\/ URL/)
})
