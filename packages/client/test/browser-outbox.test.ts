// The persistent outbox in real headless Chromium with indexedDbStorage: a publish issued offline
// survives a reload and reaches the server exactly once; one already sent when the page reloads is
// performed once (the new page resumes the old one's session, the server dedupes); two tabs sharing
// the storage never both send a command, and the survivor sends what a closed tab left.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { launchChromium, skipWithoutChromium } from '../../../test/support/chromium.js'
import { freePort } from '../../../test/support/ports.js'
import { clientBundle, servePages, type Pages } from './helpers/browser-pages.js'
import { createNode, publishGate, SharedEngine, type Node } from '../../../test/support/real-server.js'

const skip = skipWithoutChromium

// `?ws=<url>&db=<name>`: the node to talk to and the IndexedDB database to share.
const PAGE = `<!doctype html><meta charset="utf-8"><title>outbox</title>
<script type="module">
import { HoldfastClient, indexedDbStorage } from '/client.js'
const q = new URLSearchParams(location.search)
const t = (window.__t = { restored: null, discarded: null, acks: [], restoredAcks: [], connected: [], errors: [] })
const storage = indexedDbStorage(q.get('db'))
const client = new HoldfastClient(q.get('ws'), { storage, commandTimeoutMs: 120000, minReconnectDelayMs: 50, maxReconnectDelayMs: 300 })
t.client = client
client.on('error', (e) => t.errors.push(e.code + ': ' + e.message))
client.on('connected', (c) => t.connected.push({ session: c.session, resumed: c.resumed }))
client.on('queue', (e) => {
  if (!e.restored) return
  t.restored = e.restored.map((r) => ({ data: r.data, sent: r.sent }))
  t.discarded = e.discarded.map((d) => d.reason)
  for (const r of e.restored) r.result.then((a) => t.restoredAcks.push(a.offset))
})
client.connect()
t.publish = (data) => void client.publish('room', data).then((a) => t.acks.push(a.offset), (e) => t.errors.push('publish: ' + e.code))
t.stored = () => storage.keys('holdfast:o:').then(async (keys) => (await Promise.all(keys.map((k) => storage.get(k)))).map((v) => JSON.parse(v)))
</script>`

let pages: Pages
let browser: Browser

before(async () => {
  if (skip !== false) return
  pages = await servePages({ 'client.js': await clientBundle() }, () => PAGE)
  browser = await launchChromium()
})

after(async () => {
  if (skip !== false) return
  await browser?.close()
  await pages?.close()
})

const stops: Array<() => Promise<void>> = []
after(async () => {
  for (const stop of stops.reverse()) await stop()
})

/** A node that exists (it can publish and read history) but listens only when `listen()` is called. */
async function lateNode(options = {}): Promise<{ url: string; hf: Node['hf']; listen(): Promise<Node> }> {
  const port = await freePort()
  // An engine per node: each test has a history of its own.
  const engine = new SharedEngine()
  stops.push(() => engine.close())
  const pending = await createNode(engine, options)
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    hf: pending.hf,
    listen: async () => {
      const n = await pending.listen(port)
      stops.push(() => n.stop())
      return n
    },
  }
}

async function open(context: BrowserContext, ws: string, db: string): Promise<Page> {
  const page = await context.newPage()
  page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`))
  await page.goto(`${pages.url}?ws=${encodeURIComponent(ws)}&db=${db}`)
  await page.waitForFunction('window.__t !== undefined')
  return page
}

const history = async (hf: Node['hf'], channel: string) => (await hf.history(channel, { limit: 100 })).publications.map((p) => p.data)

test('in Chromium: publishes issued offline survive a reload and reach the server exactly once, in order', { skip, timeout: 60_000 }, async () => {
  const late = await lateNode()
  const context = await browser.newContext()
  try {
    const page = await open(context, late.url, 'offline-reload')
    await context.setOffline(true)
    await page.waitForFunction('window.__t.client.state === "disconnected"')
    await page.evaluate('for (let i = 1; i <= 3; i++) window.__t.publish({ i })')
    await page.waitForFunction('window.__t.stored().then((s) => s.length === 3)', undefined, { timeout: 10_000 })
    const stored = (await page.evaluate('window.__t.stored()')) as Array<{ sentAt?: number }>
    assert.ok(stored.every((r) => r.sentAt === undefined), 'nothing went on the wire')
    await context.setOffline(false)
    await page.reload()
    await page.waitForFunction('window.__t?.restored !== null', undefined, { timeout: 10_000 })
    assert.deepEqual(await page.evaluate('window.__t.restored'), [1, 2, 3].map((i) => ({ data: { i }, sent: false })))
    await late.listen()
    await page.waitForFunction('window.__t.restoredAcks.length === 3', undefined, { timeout: 15_000 })
    assert.deepEqual(await page.evaluate('window.__t.restoredAcks'), [1, 2, 3])
    assert.deepEqual(await history(late.hf, 'room'), [{ i: 1 }, { i: 2 }, { i: 3 }])
    await page.waitForFunction('window.__t.stored().then((s) => s.length === 0)', undefined, { timeout: 5000 })
    assert.deepEqual(await page.evaluate('window.__t.errors'), [])
  } finally {
    await context.close()
  }
})

test('in Chromium: a publish sent but not acked when the page reloads is performed once; the new page resumes the session', { skip, timeout: 60_000 }, async () => {
  const gate = publishGate()
  const late = await lateNode(gate.options)
  await late.listen()
  const context = await browser.newContext()
  try {
    const page = await open(context, late.url, 'sent-reload')
    await page.waitForFunction('window.__t.connected.length === 1')
    const first = (await page.evaluate('window.__t.connected[0]')) as { session: string }
    await page.evaluate('window.__t.publish({ once: true })')
    const deadline = Date.now() + 10_000
    while (gate.attempts() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.equal(gate.attempts(), 1, 'the publish reached the server')
    await page.reload()
    await page.waitForFunction('window.__t?.restored !== null', undefined, { timeout: 10_000 })
    assert.deepEqual(await page.evaluate('window.__t.restored'), [{ data: { once: true }, sent: true }])
    await page.waitForFunction('window.__t.connected.length === 1')
    const second = (await page.evaluate('window.__t.connected[0]')) as { session: string; resumed: boolean }
    assert.deepEqual(second, { session: first.session, resumed: true }, 'the reloaded page took over the session of the page before')
    gate.open()
    await page.waitForFunction('window.__t.restoredAcks.length === 1', undefined, { timeout: 10_000 })
    assert.deepEqual(await history(late.hf, 'room'), [{ once: true }], 'performed exactly once')
  } finally {
    await context.close()
  }
})

test('in Chromium: two tabs on one storage never both send a command; the survivor sends what a closed tab left', { skip, timeout: 60_000 }, async () => {
  const live = await lateNode()
  await live.listen()
  const nobody = `ws://127.0.0.1:${await freePort()}/ws`
  const context = await browser.newContext()
  try {
    const stuck = await open(context, nobody, 'two-tabs')
    await stuck.evaluate('window.__t.publish({ from: "stuck tab" })')
    await stuck.waitForFunction('window.__t.stored().then((s) => s.length === 1)')

    const other = await open(context, live.url, 'two-tabs')
    await other.waitForFunction('window.__t.connected.length === 1')
    await other.evaluate('window.__t.publish({ from: "live tab" })')
    await other.waitForFunction('window.__t.acks.length === 1')
    assert.equal(await other.evaluate('window.__t.restored'), null, 'the live tab left the other tab\'s command alone')
    assert.deepEqual(await history(live.hf, 'room'), [{ from: 'live tab' }])

    await stuck.close()
    await other.waitForFunction('window.__t.restoredAcks.length === 1', undefined, { timeout: 10_000 })
    assert.deepEqual(await other.evaluate('window.__t.restored'), [{ data: { from: 'stuck tab' }, sent: false }])
    assert.deepEqual(await history(live.hf, 'room'), [{ from: 'live tab' }, { from: 'stuck tab' }])
  } finally {
    await context.close()
  }
})
