// Bytes between codecs, through the SDK and a real server: what a MessagePack client publishes as
// bytes reaches a JSON client as a Uint8Array, live and in history, and the other way round.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'
import { WebSocket } from 'ws'
import { HoldfastClient, type PublicationEvent } from '../src/index.js'
import { SharedEngine, startNode } from '../../../test/support/real-server.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

/** Resolves once `cond()` holds (polled every 10 ms); fails after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function client(url: string, protocol: 'json' | 'msgpack'): HoldfastClient {
  const c = new HoldfastClient(url, { WebSocket, protocol })
  cleanups.push(() => c.close())
  c.connect()
  return c
}

test('bytes reach JSON and MessagePack subscribers as Uint8Array, live and in history', async () => {
  const engine = new SharedEngine()
  cleanups.push(() => engine.close())
  const node = await startNode(engine)
  cleanups.push(() => node.stop())
  const json = client(node.url, 'json')
  const msgpack = client(node.url, 'msgpack')
  const got: Record<string, unknown[]> = { json: [], msgpack: [] }
  for (const [name, c] of [['json', json], ['msgpack', msgpack]] as const) {
    const sub = c.subscribe('files:x')
    sub.on('publication', (p: PublicationEvent) => got[name]?.push(p.data))
    await new Promise((resolve) => sub.once('subscribed', resolve))
  }
  const fromMsgpack = { file: Uint8Array.from([0, 1, 2, 255]), name: 'a' }
  const fromJson = { file: Uint8Array.from([9, 8, 7]), name: 'b' }
  await msgpack.publish('files:x', fromMsgpack)
  await json.publish('files:x', fromJson)
  await until(() => got['json']?.length === 2 && got['msgpack']?.length === 2, 5000, 'both publications on both clients')
  assert.deepEqual(got['json'], [fromMsgpack, fromJson])
  assert.deepEqual(got['msgpack'], [fromMsgpack, fromJson])
  for (const c of [json, msgpack]) {
    const history = await c.history('files:x')
    assert.deepEqual(history.publications.map((p) => p.data), [fromMsgpack, fromJson])
  }
  // The server library's own publish: a Node Buffer goes out as bytes too.
  await node.hf.publish('files:x', { file: Buffer.from('hi') })
  await until(() => got['json']?.length === 3, 5000, 'the server publication')
  assert.deepEqual(got['json']?.[2], { file: Uint8Array.from(Buffer.from('hi')) })
})
