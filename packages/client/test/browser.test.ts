// The client bundled for the browser (esbuild, no Node APIs) in real headless Chromium against the
// real server: it connects with the browser's own WebSocket, and the network going offline drops
// the connection at once with no reconnect attempts until it comes back, after which the client
// recovers what it missed and sends what was queued, each exactly once. Needs /usr/bin/chromium.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, skipWithoutChromium } from '../../../test/support/chromium.js'
import { clientBundle, servePages, type Pages } from './helpers/browser-pages.js'
import { SharedEngine, startNode, type Node } from '../../../test/support/real-server.js'

const skip = skipWithoutChromium

let engine: SharedEngine
let node: Node
let pages: Pages
let pagesUrl = ''
let browser: Browser

// Page-side code is plain JavaScript text: functions compiled by tsx would carry helpers the page lacks.
const PAGE = (wsUrl: string) => `<!doctype html><meta charset="utf-8"><title>client</title>
<script type="module">
import { HoldfastClient } from '/client.js'
const t = (window.__t = { states: [], pubs: [], acks: [], queue: 0, drops: [] })
const client = new HoldfastClient(${JSON.stringify(wsUrl)}, { minReconnectDelayMs: 50, maxReconnectDelayMs: 500 })
t.client = client
client.on('state', (s) => t.states.push(s.to + ':' + s.reason.message))
client.on('disconnected', (d) => t.drops.push(d.reconnectInMs))
client.on('queue', (q) => (t.queue = q.size))
const sub = client.subscribe('room')
sub.on('publication', (p) => t.pubs.push(p.offset))
client.connect()
t.publish = (data) => client.publish('room', data).then((a) => t.acks.push(a.offset))
</script>`

before(async () => {
  if (skip !== false) return
  engine = new SharedEngine()
  node = await startNode(engine)
  const html = PAGE(node.url)
  pages = await servePages({ 'client.js': await clientBundle() }, () => html)
  pagesUrl = pages.url
  browser = await launchChromium()
})

after(async () => {
  if (skip !== false) return
  await browser?.close()
  await pages?.close()
  await node?.stop()
  await engine?.close()
})

test('in Chromium: offline drops at once and waits; online reconnects, recovers and flushes the queue exactly once', { skip, timeout: 60_000 }, async () => {
  const context = await browser.newContext()
  try {
    const page = await context.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(pagesUrl)
    await page.waitForFunction('window.__t?.client.state === "connected"', undefined, { timeout: 10_000 })
    await page.waitForFunction('window.__t.client.getSubscription("room")?.state === "subscribed"', undefined, { timeout: 10_000 })
    for (let i = 1; i <= 5; i++) await node.hf.publish('room', { i })
    await page.waitForFunction('window.__t.pubs.length === 5', undefined, { timeout: 10_000 })

    await context.setOffline(true)
    await page.waitForFunction('window.__t.client.state === "disconnected"', undefined, { timeout: 5000 })
    const drop = (await page.evaluate('window.__t.drops.at(-1)')) as number | null
    assert.equal(drop, null, 'offline: no reconnect attempt is scheduled')
    for (let i = 6; i <= 10; i++) await node.hf.publish('room', { i })
    await page.evaluate('void window.__t.publish({ from: "page" })')
    assert.equal(await page.evaluate('window.__t.queue'), 1)
    assert.equal(await page.evaluate('window.__t.client.state'), 'disconnected')

    await context.setOffline(false)
    await page.waitForFunction('window.__t.acks.length === 1 && window.__t.pubs.length === 11', undefined, { timeout: 10_000 })
    const t = (await page.evaluate('({ pubs: window.__t.pubs, acks: window.__t.acks, states: window.__t.states })')) as {
      pubs: number[]
      acks: number[]
      states: string[]
    }
    assert.deepEqual(t.pubs, Array.from({ length: 11 }, (_, i) => i + 1))
    assert.deepEqual(t.acks, [11])
    assert.ok(t.states.includes('disconnected:network offline'), t.states.join(', '))
    const offlineAt = t.states.indexOf('disconnected:network offline')
    assert.equal(t.states[offlineAt + 1], 'connecting:network back online', 'the first attempt comes when the network is back')
    await page.evaluate('window.__t.client.close()')
    assert.deepEqual(errors, [])
  } finally {
    await context.close()
  }
})
