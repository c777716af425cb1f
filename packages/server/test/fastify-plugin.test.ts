import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import Fastify from 'fastify'
import { createHoldfast } from '../src/index.js'
import { holdfastFastify } from '../src/fastify-plugin.js'
import { RawClient } from './helpers.js'

describe('fastify plugin', () => {
  it('serves WebSockets on the path beside normal routes, and drains on app.close()', async () => {
    const app = Fastify()
    const holdfast = createHoldfast({ logger: false })
    app.get('/hello', async () => ({ hello: 'world' }))
    await app.register(holdfastFastify, { holdfast, path: '/rt' })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as AddressInfo).port
    const res = await fetch(`http://127.0.0.1:${port}/hello`)
    assert.deepEqual(await res.json(), { hello: 'world' })
    const c = new RawClient(`ws://127.0.0.1:${port}/rt`)
    await c.connect()
    await c.call({ type: 'subscribe', channel: 'f' })
    await holdfast.publish('f', 1)
    await c.until(() => c.pubs('f').length === 1)
    // Another path is not an endpoint.
    const wrong = new RawClient(`ws://127.0.0.1:${port}/ws`)
    await assert.rejects(wrong.opened(), (err: Error & { status?: number }) => err.status === 404)
    await app.close()
    assert.equal((await c.waitClosed()).code, 4000)
    assert.equal(holdfast.draining, true)
  })

  it('refuses to register without a gateway', async () => {
    const app = Fastify()
    await assert.rejects(async () => {
      await app.register(holdfastFastify, {} as never)
      await app.ready()
    }, /needs the "holdfast" option/)
  })
})
