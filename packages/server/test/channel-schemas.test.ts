// channelSchemas: a Standard Schema per namespace checks the data of client publishes.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'
import * as v from 'valibot'
import { resolveOptions } from '../src/options.js'
import { RawClient, startServer, type TestServer } from './helpers.js'

const servers: TestServer[] = []
const clients: RawClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  for (const s of servers.splice(0)) await s.close()
})

async function connected(options: Parameters<typeof startServer>[0]): Promise<{ server: TestServer; c: RawClient }> {
  const server = await startServer(options)
  servers.push(server)
  const c = new RawClient(server.url)
  clients.push(c)
  await c.opened()
  await c.connect()
  return { server, c }
}

const Chat = v.object({ text: v.pipe(v.string(), v.maxLength(10)) })

test('a publish whose data fails its namespace schema gets bad_request naming the field; nothing is stored', async () => {
  const { server, c } = await connected({ channelSchemas: { chat: Chat } })
  const bad = await c.request({ type: 'publish', channel: 'chat:a', data: { text: 'far too long a text' }, msgId: 'm1' })
  assert.ok('error' in bad, JSON.stringify(bad))
  assert.equal(bad.error.code, 107)
  assert.match(bad.error.message, /^data does not match the schema of namespace "chat": text: /)
  const missing = await c.request({ type: 'publish', channel: 'chat:a', data: 'not an object', msgId: 'm2' })
  assert.ok('error' in missing && missing.error.code === 107, JSON.stringify(missing))
  const ok = await c.request({ type: 'publish', channel: 'chat:a', data: { text: 'hi' }, msgId: 'm3' })
  assert.deepEqual('result' in ok && ok.result, { offset: 1, epoch: (ok as { result: { epoch: string } }).result.epoch })
  // Other namespaces, and channels without one, are not checked.
  for (const channel of ['news:a', 'lobby']) {
    const free = await c.request({ type: 'publish', channel, data: 42, msgId: `f-${channel}` })
    assert.ok('result' in free, JSON.stringify(free))
  }
  const history = await server.gw.history('chat:a', {})
  assert.deepEqual(history.publications.map((p) => p.data), [{ text: 'hi' }])
})

test('an asynchronous schema is awaited on the server', async () => {
  const Checked = v.pipeAsync(v.number(), v.checkAsync(async (n) => n > 0, 'must be positive'))
  const { c } = await connected({ channelSchemas: { scores: Checked } })
  const bad = await c.request({ type: 'publish', channel: 'scores:x', data: -1, msgId: 'a' })
  assert.ok('error' in bad && /must be positive/.test(bad.error.message), JSON.stringify(bad))
  const good = await c.request({ type: 'publish', channel: 'scores:x', data: 5, msgId: 'b' })
  assert.ok('result' in good, JSON.stringify(good))
})

test('channelSchemas is checked at construction: a TypeError names the entry', () => {
  assert.throws(() => resolveOptions({ channelSchemas: { chat: { parse() {} } as never } }), { name: 'TypeError', message: /"channelSchemas\.chat" must be a Standard Schema/ })
  assert.throws(() => resolveOptions({ channelSchemas: { 'bad ns': Chat } }), { name: 'TypeError', message: /channelSchemas\.bad ns/ })
  assert.throws(() => resolveOptions({ channelSchemas: [] as never }), { name: 'TypeError', message: /"channelSchemas" must be an object/ })
  assert.deepEqual(resolveOptions({}).channelSchemas, {})
})
