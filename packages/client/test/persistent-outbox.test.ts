// The persistent outbox and positions (`storage` option): commands are stored before they are sent
// and deleted on ack; a later client (or process) with the same storage sends what was left, once,
// in order, before anything newer; an owner that is alive keeps its commands; a command sent before
// a crash is performed once (server dedupe); what cannot be sent safely is reported, not sent.
// Real server, real time, real processes killed with SIGKILL where a crash is the point.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, test } from 'node:test'
import { WebSocket } from 'ws'
import { HoldfastClient, fileStorage, type ClientOptions, type QueueEvent } from '../src/index.js'
import { MAX_STORED_POSITIONS, Persistence, type LoadedRecord, type StoredRecord } from '../src/persistence.js'
import { waitFor } from './helpers/fake-server.js'
import { MemoryStorage } from './helpers/memory-storage.js'
import { publishGate, SharedEngine, startNode, type Node } from '../../../test/support/real-server.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

function makeClient(url: string, options: ClientOptions = {}): HoldfastClient {
  const client = new HoldfastClient(url, { WebSocket, minReconnectDelayMs: 20, maxReconnectDelayMs: 200, restartJitterMs: 50, ...options })
  client.on('error', (e) => process.env['DEBUG_HF'] && console.log('client error', e.code, e.message))
  cleanups.push(() => client.close())
  return client
}

async function node(options = {}): Promise<Node> {
  const engine = new SharedEngine()
  const n = await startNode(engine, options)
  cleanups.push(async () => {
    await n.stop()
    await engine.close()
  })
  return n
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const NOBODY = 'ws://127.0.0.1:9/ws' // discard port: nothing listens, connects fail at once

async function historyData(n: Node, channel: string): Promise<unknown[]> {
  return (await n.hf.history(channel, { limit: 100 })).publications.map((p) => p.data)
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'holdfast-storage-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function record(seq: number, msgId: string, at: number, extra: Partial<StoredRecord> = {}): StoredRecord {
  return { v: 1, seq, createdAt: at, deadline: at + 60_000, command: { type: 'publish', channel: 'c', data: { seq }, msgId }, ...extra }
}

// ---------------------------------------------------------------- ownership and bounds

test('an owner that is alive keeps its commands; another client adopts them when its lock comes free, and only one does', async () => {
  const storage = new MemoryStorage()
  const errors: unknown[] = []
  const a = new Persistence(storage, 'owner-a', (e) => errors.push(e))
  await a.start(() => assert.fail('a has nobody to adopt'))
  await a.write(a.keyFor(1), record(1, 'm1', Date.now()))

  const adoptedByB: LoadedRecord[] = []
  const b = new Persistence(storage, 'owner-b', (e) => errors.push(e))
  const atStart = await b.start((records) => adoptedByB.push(...records))
  assert.deepEqual(atStart.records, [], 'a is alive: b must not take its commands')
  const c = new Persistence(storage, 'owner-c', (e) => errors.push(e))
  const adoptedByC: LoadedRecord[] = []
  await c.start((records) => adoptedByC.push(...records))

  a.close()
  await until(() => adoptedByB.length + adoptedByC.length === 1, 'one adopter')
  await new Promise((r) => setTimeout(r, 50))
  assert.equal(adoptedByB.length + adoptedByC.length, 1, 'exactly one client adopted the command')
  assert.equal((adoptedByB[0] ?? adoptedByC[0])?.record.command.msgId, 'm1')
  b.close()
  c.close()
  assert.deepEqual(errors, [])
})

test(`positions are bounded: past ${MAX_STORED_POSITIONS}, the least recently written are deleted at start`, async () => {
  const storage = new MemoryStorage()
  for (let i = 0; i < MAX_STORED_POSITIONS + 2; i++) storage.data.set(`holdfast:p:ch${i}`, JSON.stringify({ epoch: 'e', offset: i, at: 1000 + i }))
  storage.data.set('holdfast:p:broken', '{nope')
  const p = new Persistence(storage, 'owner-p', () => {})
  const { positions } = await p.start(() => {})
  assert.equal(positions.size, MAX_STORED_POSITIONS)
  assert.equal(positions.has('ch0') || positions.has('ch1'), false, 'the two oldest are gone')
  assert.deepEqual(positions.get(`ch${MAX_STORED_POSITIONS + 1}`), { epoch: 'e', offset: MAX_STORED_POSITIONS + 1 })
  await until(() => !storage.data.has('holdfast:p:ch0') && !storage.data.has('holdfast:p:broken'), 'old and unreadable positions deleted')
  p.close()
})

// ---------------------------------------------------------------- fileStorage

test('fileStorage: values round-trip, long keys are hashed but listed by their own name, deletes are idempotent', async () => {
  const dir = await tempDir()
  const s = fileStorage(dir)
  const long = `holdfast:p:${'x'.repeat(300)}`
  await s.set('holdfast:o:a:1', 'one')
  await s.set(long, 'long')
  await s.set('other', 'v')
  assert.equal(await s.get('holdfast:o:a:1'), 'one')
  assert.equal(await s.get(long), 'long')
  assert.equal(await s.get('missing'), undefined)
  assert.deepEqual((await s.keys('holdfast:')).sort(), ['holdfast:o:a:1', long].sort())
  await s.delete('holdfast:o:a:1')
  await s.delete('holdfast:o:a:1')
  assert.deepEqual(await s.keys('holdfast:o:'), [])
  assert.ok((await readdir(dir)).every((f) => Buffer.byteLength(f) < 255))
})

test('fileStorage: a directory held by a live process is refused; one left by a dead process is taken over', async () => {
  const dir = await tempDir()
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
  cleanups.push(() => {
    holder.kill('SIGKILL')
  })
  await writeFile(join(dir, '.lock'), String(holder.pid))
  await assert.rejects(fileStorage(dir).set('k', 'v'), (e: Error) => e.message.includes(`in use by process ${holder.pid}`))

  const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise((r) => dead.once('exit', r))
  await writeFile(join(dir, '.lock'), String(dead.pid))
  const s = fileStorage(dir)
  await s.set('k', 'v')
  assert.equal(await s.get('k'), 'v')
})

// ---------------------------------------------------------------- the client

test('a command is stored before it is sent (marked as sent) and deleted when acked', async () => {
  const storage = new MemoryStorage()
  const seenAtServer: Array<{ stored: boolean; sentMarked: boolean }> = []
  const n = await node({
    canPublish: ({ data }: { data: unknown }) => {
      const msgId = (data as { id: string }).id
      const rec = storage.commands().find((c) => (c.record.command.data as { id: string }).id === msgId)
      seenAtServer.push({ stored: rec !== undefined, sentMarked: rec?.record.sentAt !== undefined })
      return true
    },
  })
  const client = makeClient(n.url, { storage })
  client.connect()
  await waitFor(client, 'connected')
  await client.publish('c', { id: 'online' })
  assert.deepEqual(seenAtServer, [{ stored: true, sentMarked: true }])
  await until(() => storage.commands().length === 0, 'the acked command deleted')

  // Issued while offline: stored unsent, marked as sent before it goes out after connect.
  const offline = makeClient(NOBODY, { storage })
  const p = offline.publish('c', { id: 'offline' })
  await until(() => storage.commands().length === 1, 'stored while offline')
  assert.equal(storage.commands()[0]?.record.sentAt, undefined)
  offline.close()
  await assert.rejects(p, { code: 'client_closed' })
  await until(() => storage.commands().length === 0, 'a rejected command is deleted')
})

test('a new client with the same storage sends what the last one left, once, in order, before anything newer', async () => {
  const n = await node()
  const storage = new MemoryStorage()
  const first = makeClient(NOBODY, { storage })
  for (let i = 1; i <= 3; i++) void first.publish('c', { i }).catch(() => {})
  await until(() => storage.commands().length === 3, '3 stored')
  // The page goes away without a chance to clean up: its commands stay, its locks go.
  storage.skipDeletes = true
  first.close()
  await new Promise((r) => setTimeout(r, 20))
  storage.skipDeletes = false

  const second = makeClient(n.url, { storage })
  const restoredEvent = waitFor(second, 'queue', (q: QueueEvent) => q.restored !== undefined)
  const fourth = second.publish('c', { i: 4 })
  second.connect()
  const q: QueueEvent = await restoredEvent
  assert.deepEqual(q.restored?.map((r) => [r.type, r.channel, r.data, r.sent]), [1, 2, 3].map((i) => ['publish', 'c', { i }, false]))
  assert.deepEqual(q.discarded, [])
  assert.deepEqual(second.restored, q.restored, 'client.restored lists them while they wait for their acks')
  const results = await Promise.all(q.restored?.map((r) => r.result) ?? [])
  assert.deepEqual(results.map((r) => (r as { offset: number }).offset), [1, 2, 3])
  assert.deepEqual(second.restored, [], 'and no longer once acked')
  assert.equal((await fourth).offset, 4)
  assert.deepEqual(await historyData(n, 'c'), [{ i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }])
  await until(() => storage.commands().length === 0, 'all deleted after their acks')
})

test('two live clients on one storage: neither sends the other\'s commands; the survivor sends them when the other goes', async () => {
  const n = await node()
  const storage = new MemoryStorage()
  const offlineTab = makeClient(NOBODY, { storage })
  void offlineTab.publish('c', { from: 'offline tab' }).catch(() => {})
  await until(() => storage.commands().length === 1, 'stored')

  const liveTab = makeClient(n.url, { storage })
  liveTab.connect()
  await waitFor(liveTab, 'connected')
  await liveTab.publish('c', { from: 'live tab' })
  assert.deepEqual(await historyData(n, 'c'), [{ from: 'live tab' }], 'the live tab did not send the other tab\'s command')

  const adopted = waitFor(liveTab, 'queue', (q: QueueEvent) => q.restored !== undefined)
  storage.skipDeletes = true
  offlineTab.close()
  const q: QueueEvent = await adopted
  storage.skipDeletes = false
  assert.equal(q.restored?.length, 1)
  await q.restored?.[0]?.result
  assert.deepEqual(await historyData(n, 'c'), [{ from: 'live tab' }, { from: 'offline tab' }])
})

test('stored commands past their deadline or past the dedupe window are reported, not sent; drop() takes one out', async () => {
  const n = await node()
  const storage = new MemoryStorage()
  const now = Date.now()
  const owner = 'gone-owner'
  const put = (seq: number, r: StoredRecord) => storage.data.set(`holdfast:o:${owner}:${seq}`, JSON.stringify(r))
  put(1, record(1, 'expired', now - 120_000, { deadline: now - 1000 }))
  put(2, record(2, 'unknown', now - 30_000, { sentAt: now - 20_000 }))
  put(3, record(3, 'dropme', now - 10_000))
  put(4, record(4, 'keep', now - 5000, { sentAt: now - 4000 }))
  storage.data.set(`holdfast:o:${owner}:5`, '{"garbage"')

  const client = makeClient(n.url, { storage, idempotencyWindowMs: 10_000 })
  const errors: string[] = []
  client.on('error', (e) => errors.push(e.code))
  const event: QueueEvent = await waitFor(client, 'queue', (q: QueueEvent) => q.restored !== undefined)
  assert.deepEqual(event.discarded?.map((d) => [d.msgId, d.reason]), [['expired', 'expired'], ['unknown', 'unknown_outcome']])
  assert.deepEqual(event.restored?.map((r) => [r.msgId, r.sent]), [['dropme', false], ['keep', true]])
  event.restored?.[0]?.drop()
  await assert.rejects(event.restored?.[0]?.result as Promise<unknown>, { code: 'dropped' })
  client.connect()
  await event.restored?.[1]?.result
  assert.deepEqual(await historyData(n, 'c'), [{ seq: 4 }])
  assert.deepEqual(errors, ['storage_failed'], 'the unreadable record is reported')
  await until(() => storage.commands().length === 0, 'every command handled is deleted')
})

test('a subscription position survives: the next client with the storage recovers from it', async () => {
  const n = await node()
  const storage = new MemoryStorage()
  const first = makeClient(n.url, { storage })
  first.connect()
  const seen: number[] = []
  first.subscribe('news').on('publication', (p) => seen.push(p.offset))
  await waitFor(first.getSubscription('news')!, 'subscribed')
  for (let i = 1; i <= 3; i++) await n.hf.publish('news', { i })
  await until(() => seen.length === 3, '3 delivered')
  await until(() => storage.data.get('holdfast:p:news')?.includes('"offset":3') === true, 'position 3 stored')
  first.close()
  for (let i = 4; i <= 5; i++) await n.hf.publish('news', { i })

  const second = makeClient(n.url, { storage })
  second.connect()
  const sub = second.subscribe('news')
  const later: number[] = []
  sub.on('publication', (p) => later.push(p.offset))
  const subscribed = await waitFor(sub, 'subscribed')
  assert.deepEqual([subscribed.wasRecovering, subscribed.recovered], [true, true])
  await until(() => later.length === 2, 'the 2 missed')
  assert.deepEqual(later, [4, 5])
  sub.unsubscribe()
  await until(() => !storage.data.has('holdfast:p:news'), 'an ended subscription forgets its position')
})

test('storage failures are loud: a command that cannot be stored is rejected and not sent; an unreadable storage leaves the client working in memory', async () => {
  const n = await node()
  const storage = new MemoryStorage()
  const client = makeClient(n.url, { storage })
  client.connect()
  await waitFor(client, 'connected')
  storage.failing.set = new Error('quota exceeded')
  await assert.rejects(client.publish('c', { lost: true }), (e: Error & { code?: string }) => e.code === 'storage_failed' && e.message.includes('quota exceeded'))
  assert.deepEqual(await historyData(n, 'c'), [])

  const broken = new MemoryStorage()
  broken.failing.keys = new Error('database is gone')
  const other = makeClient(n.url, { storage: broken })
  const error = waitFor(other, 'error', (e) => e.code === 'storage_failed')
  other.connect()
  assert.match((await error).message, /continuing without storage.*database is gone/)
  assert.equal((await other.publish('c', { ok: true })).offset, 1)
})

// ---------------------------------------------------------------- crashes (SIGKILL)

const PUBLISHER = fileURLToPath(new URL('./helpers/durable-publisher.ts', import.meta.url))

function publisher(dir: string, url: string, count: number, channel: string): { child: ChildProcess; lines: string[]; waitLine(l: string): Promise<void> } {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', PUBLISHER, dir, url, String(count), channel], { stdio: ['ignore', 'pipe', 'inherit'] })
  cleanups.push(() => {
    child.kill('SIGKILL')
  })
  const lines: string[] = []
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)))
  return { child, lines, waitLine: (l) => until(() => lines.includes(l), `"${l}" from the publisher`, 20_000) }
}

/** The files of stored commands (`holdfast:o:…`, URI-encoded), without temporary ones. */
async function commandFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => decodeURIComponent(f).startsWith('holdfast:o:') && !f.endsWith('.tmp'))
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGKILL')
  await exited
}

test('offline, then killed with SIGKILL: the next process sends every stored publish once, in order', { timeout: 60_000 }, async () => {
  const dir = await tempDir()
  const p = publisher(dir, NOBODY, 5, 'c')
  await p.waitLine('issued')
  await until(async () => (await commandFiles(dir)).length === 5, '5 command files', 20_000)
  await kill9(p.child)

  const n = await node()
  const client = makeClient(n.url, { storage: fileStorage(dir) })
  const q: QueueEvent = await waitFor(client, 'queue', (e: QueueEvent) => e.restored !== undefined)
  client.connect()
  assert.equal(q.restored?.length, 5)
  await Promise.all(q.restored?.map((r) => r.result) ?? [])
  assert.deepEqual(await historyData(n, 'c'), [1, 2, 3, 4, 5].map((i) => ({ n: i })))
  await until(async () => (await commandFiles(dir)).length === 0, 'files deleted')
})

test('sent but not acked when the process was killed: resent by the next one and performed exactly once', { timeout: 60_000 }, async () => {
  const dir = await tempDir()
  const gate = publishGate()
  const n = await node(gate.options)
  const p = publisher(dir, n.url, 3, 'c')
  // The server runs one connection's commands in order: the first waits at the gate, the others behind it.
  await until(() => gate.attempts() === 1, 'the first publish at the server', 20_000)
  const sentMarks = async () => {
    const files = await commandFiles(dir)
    const records = await Promise.all(files.map(async (f) => JSON.parse(JSON.parse(await readFile(join(dir, f), 'utf8'))[1]) as StoredRecord))
    return records.filter((r) => r.sentAt !== undefined).length
  }
  await until(async () => (await sentMarks()) === 3, 'all 3 stored as sent', 20_000)
  await kill9(p.child)
  assert.ok(!p.lines.some((l) => l.startsWith('acked')), 'nothing was acked before the kill')
  // The killed process's first publish now completes on the server (the two behind it died with
  // the connection): the server stored it, the publisher never heard.
  gate.open()
  await until(async () => (await historyData(n, 'c')).length === 1, 'the first one stored')

  const client = makeClient(n.url, { storage: fileStorage(dir) })
  const q: QueueEvent = await waitFor(client, 'queue', (e: QueueEvent) => e.restored !== undefined)
  assert.deepEqual(q.restored?.map((r) => r.sent), [true, true, true])
  client.connect()
  const results = (await Promise.all(q.restored?.map((r) => r.result) ?? [])) as Array<{ offset: number; duplicate?: boolean }>
  assert.deepEqual(results.map((r) => [r.offset, r.duplicate === true]), [[1, true], [2, false], [3, false]])
  assert.deepEqual(await historyData(n, 'c'), [1, 2, 3].map((i) => ({ n: i })), 'each publication once')
})
