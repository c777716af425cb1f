// Typed channels: subscribe<T>(), publish<T>(), rpc<Req, Res>(), and a Standard Schema per
// subscription (valibot here) that checks each publication before delivery.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'
import * as v from 'valibot'
import { WebSocket } from 'ws'
import { HoldfastClient, type HoldfastError, type PublicationEvent } from '../src/index.js'
import { SharedEngine, startNode, type Node } from '../../../test/support/real-server.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

async function setup(): Promise<{ node: Node; client: HoldfastClient }> {
  const engine = new SharedEngine()
  cleanups.push(() => engine.close())
  const node = await startNode(engine)
  cleanups.push(() => node.stop())
  const client = new HoldfastClient(node.url, { WebSocket })
  cleanups.push(() => client.close())
  client.connect()
  return { node, client }
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const Message = v.object({ text: v.string(), at: v.pipe(v.number(), v.transform((n) => new Date(n))) })

test('a schema checks every publication: its output is delivered, a mismatch is skipped with an error event', async () => {
  const { node, client } = await setup()
  const sub = client.subscribe('chat:typed', { schema: Message })
  const got: Array<PublicationEvent<{ text: string; at: Date }>> = []
  const errors: HoldfastError[] = []
  sub.on('publication', (p) => got.push(p))
  sub.on('error', (e) => errors.push(e))
  await new Promise((resolve) => sub.once('subscribed', resolve))
  await node.hf.publish('chat:typed', { text: 'one', at: 0 })
  await node.hf.publish('chat:typed', { text: 2, at: 0 }) // the server API is not checked: the client is
  await node.hf.publish('chat:typed', { text: 'three', at: 1000 })
  await until(() => got.length === 2 && errors.length === 1, 'two deliveries and one error')
  assert.deepEqual(got.map((p) => [p.offset, p.data.text, p.data.at.getTime()]), [[1, 'one', 0], [3, 'three', 1000]])
  assert.ok(got[0]?.data.at instanceof Date, 'the schema output (a Date) is what is delivered')
  assert.equal(errors[0]?.code, 'bad_request')
  assert.equal(errors[0]?.message, 'publication 2 of chat:typed does not match its schema')
  const issues = (errors[0]?.cause as { issues?: Array<{ path?: Array<{ key: unknown }> }> }).issues
  assert.equal(issues?.[0]?.path?.[0]?.key, 'text', 'the schema result, with its issues, is the cause')
  assert.deepEqual(sub.position?.offset, 3, 'the position moved past the skipped publication')
})

test('an asynchronous schema is refused on receive, with an error event', async () => {
  const { node, client } = await setup()
  const slow = v.pipeAsync(v.string(), v.checkAsync(async () => true))
  const sub = client.subscribe('chat:async', { schema: slow })
  const errors: HoldfastError[] = []
  sub.on('error', (e) => errors.push(e))
  let delivered = 0
  sub.on('publication', () => delivered++)
  await new Promise((resolve) => sub.once('subscribed', resolve))
  await node.hf.publish('chat:async', 'hello')
  await until(() => errors.length === 1, 'the error')
  assert.ok(errors[0]?.cause instanceof Promise, 'an asynchronous result is refused (the cause is the promise)')
  assert.equal(delivered, 0)
})

test('generics type publish, subscribe and rpc', async () => {
  const { node, client } = await setup()
  node.hf.onRpc('add', (_ctx, data) => ({ sum: (data as number[]).reduce((a, b) => a + b, 0) }))
  const result = await client.rpc<number[], { sum: number }>('add', [1, 2, 3])
  const sum: number = result.sum
  assert.equal(sum, 6)
  const sub = client.subscribe<{ n: number }>('chat:generic')
  const seen: number[] = []
  sub.on('publication', ({ data }) => seen.push(data.n))
  await new Promise((resolve) => sub.once('subscribed', resolve))
  await client.publish<{ n: number }>('chat:generic', { n: 7 })
  await until(() => seen.length === 1, 'the publication')
  assert.deepEqual(seen, [7])
  // Compile-time checks (tsc -p tsconfig.test.json): wrong data types do not compile.
  if (seen.length < 0) {
    // @ts-expect-error data must be a { n: number }
    await client.publish<{ n: number }>('chat:generic', { n: 'seven' })
    // @ts-expect-error the request type is number[]
    await client.rpc<number[], { sum: number }>('add', 'one')
    // @ts-expect-error the schema's output has no field `missing`
    client.subscribe('chat:typed', { schema: Message }).on('publication', (p) => p.data.missing)
  }
})
