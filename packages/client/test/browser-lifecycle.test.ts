// The page lifecycle in real headless Chromium, driven through the DevTools protocol:
// - a page frozen (Page.setWebLifecycleState) long past the server's heartbeat, while the network
//   goes offline and back and the server keeps publishing, comes back with every publication
//   recovered exactly once and its queued publish acked once;
// - a hidden page under Chromium's intensive timer throttling (one wake-up a minute) keeps its
//   connection: no false heartbeat timeout on either side, publications keep arriving;
// - a page put in the back/forward cache closes its socket and recovers when it is shown again.
// HOLDFAST_FREEZE_MS sets the freeze (20 s by default; 120000 reproduces "frozen for two minutes").
// Heartbeat bounds are seconds (ping 2 s, pong and watchdog slack 5 s), throttling is a minute:
// a false timeout would show; a loaded test machine does not make one.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { CDPSession, Page } from 'playwright-core'
import { skipWithoutChromium } from '../../../test/support/chromium.js'
import { launchRealChromium, type RealChromium } from './helpers/cdp-chromium.js'
import { clientBundle, servePages, type Pages } from './helpers/browser-pages.js'
import { SharedEngine, startNode, type Node } from '../../../test/support/real-server.js'

const skip = skipWithoutChromium
const FREEZE_MS = Number(process.env['HOLDFAST_FREEZE_MS'] ?? 20_000)
/** Chromium throttles a hidden page's timers to one wake-up a minute after this grace (300 s by default). */
const THROTTLE_GRACE_S = 3

const PAGE = `<!doctype html><meta charset="utf-8"><title>lifecycle</title>
<script type="module">
import { HoldfastClient } from '/client.js'
const q = new URLSearchParams(location.search)
const ch = q.get('ch')
const t = (window.__t = { states: [], events: [], pubs: [], subscribed: [], acks: [], ticks: [], shows: [], errors: [] })
const client = new HoldfastClient(q.get('ws'), { minReconnectDelayMs: 100, maxReconnectDelayMs: 1000, maxServerPingDelayMs: 5000, healthCheckTimeoutMs: 2000 })
t.client = client
client.on('state', (s) => t.states.push(s.to + ':' + s.reason.name + ':' + s.reason.message))
client.on('error', (e) => t.errors.push(e.code + ': ' + e.message))
const sub = client.subscribe(ch)
sub.on('publication', (p) => t.pubs.push(p.offset))
sub.on('subscribed', (s) => t.subscribed.push([s.recovered, s.wasRecovering]))
client.connect()
t.publish = (data) => void client.publish(ch, data).then((a) => t.acks.push(a.offset), (e) => t.acks.push('error ' + e.code))
const t0 = (t.t0 = Date.now())
;(function tick() { t.ticks.push(Date.now() - t0); if (t.ticks.length > 5000) t.ticks.shift(); setTimeout(tick, 200) })()
addEventListener('pageshow', (e) => t.shows.push(e.persisted))
for (const type of ['freeze', 'resume', 'visibilitychange']) document.addEventListener(type, () => t.events.push(type + ':' + document.visibilityState + '@' + (Date.now() - t0)))
</script>`

let engine: SharedEngine
let node: Node
let pages: Pages
let chrome: RealChromium
const serverCloses: number[] = []

before(async () => {
  if (skip !== false) return
  engine = new SharedEngine()
  node = await startNode(engine, { pingIntervalMs: 2000, pongTimeoutMs: 5000 })
  node.hf.on('disconnect', (d) => serverCloses.push(d.code))
  pages = await servePages({ 'client.js': await clientBundle() }, (path) => (path.startsWith('/lifecycle') ? PAGE : '<!doctype html><title>elsewhere</title>'))
  chrome = await launchRealChromium([`--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/${THROTTLE_GRACE_S}`])
})

after(async () => {
  if (skip !== false) return
  await chrome?.close()
  await pages?.close()
  await node?.stop()
  await engine?.close()
})

async function openPage(channel: string): Promise<{ page: Page; cdp: CDPSession }> {
  const page = await chrome.context.newPage()
  page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`))
  await page.goto(`${pages.url}lifecycle?ws=${encodeURIComponent(node.url)}&ch=${channel}`)
  await page.waitForFunction('window.__t?.subscribed.length === 1', undefined, { timeout: 10_000 })
  return { page, cdp: await chrome.context.newCDPSession(page) }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Wait for a condition in the page, polled from here: a hidden page runs no animation frames and
 * its own timers are throttled, so Playwright's in-page polling would stall with it.
 */
async function until(page: Page, expression: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${expression}: ${JSON.stringify(await page.evaluate('window.__t.states'))}`)
    await sleep(50)
  }
}

/** Publish one message every `everyMs` from the server until `stop()`; resolves with the count. */
function publishing(channel: string, everyMs: number): { stop(): Promise<number> } {
  let n = 0
  let running = true
  const loop = (async () => {
    while (running) {
      await node.hf.publish(channel, { n: ++n })
      await sleep(everyMs)
    }
    return n
  })()
  return {
    stop: async () => {
      running = false
      return loop
    },
  }
}

const consecutive = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

test(`in Chromium: frozen for ${FREEZE_MS / 1000} s (network offline and back meanwhile): every publication recovered once, the queued publish acked once`, { skip, timeout: FREEZE_MS + 90_000 }, async () => {
  const { page, cdp } = await openPage('frozen')
  try {
    const feed = publishing('frozen', 500)
    await page.waitForFunction('window.__t.pubs.length >= 3', undefined, { timeout: 10_000 })
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
    await until(page, 'window.__t.client.state === "disconnected"', 5000)
    await page.evaluate('window.__t.publish({ from: "page, offline" })')
    const closesBefore = serverCloses.length
    await cdp.send('Page.setWebLifecycleState', { state: 'frozen' })
    await sleep(FREEZE_MS / 2)
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
    await sleep(FREEZE_MS / 2)
    await cdp.send('Page.setWebLifecycleState', { state: 'active' })
    const resumedAt = Date.now()
    const published = await feed.stop()
    await until(page, `window.__t.pubs.length >= ${published + 1} && window.__t.acks.length === 1`, 20_000)
    const recoveredInMs = Date.now() - resumedAt
    const t = (await page.evaluate('({ pubs: window.__t.pubs, acks: window.__t.acks, subscribed: window.__t.subscribed, ticks: window.__t.ticks.concat(Date.now() - window.__t.t0), states: window.__t.states })')) as {
      pubs: number[]
      acks: Array<number | string>
      subscribed: Array<[boolean, boolean]>
      ticks: number[]
      states: string[]
    }
    const offsets = (await node.hf.history('frozen', { limit: 10_000 })).publications
    const pageOffset = offsets.find((p) => (p.data as { from?: string }).from === 'page, offline')?.offset
    assert.deepEqual(t.pubs, consecutive(published + 1), 'every publication once, in order (the page\'s own included)')
    assert.deepEqual(t.acks, [pageOffset], 'the queued publish acked once')
    assert.equal(offsets.filter((p) => (p.data as { from?: string }).from !== undefined).length, 1, 'stored once')
    assert.ok(t.subscribed.slice(1).every(([recovered, was]) => recovered && was), `recovered: ${JSON.stringify(t.subscribed)}`)
    const longestStall = Math.max(...t.ticks.slice(1).map((x, i) => x - (t.ticks[i] as number)))
    assert.ok(longestStall >= FREEZE_MS * 0.9, `the page really was frozen: its timers stalled ${longestStall} ms`)
    assert.ok(recoveredInMs < 15_000, `recovered ${recoveredInMs} ms after the resume`)
    console.log(`# frozen ${FREEZE_MS} ms: ${published} publications meanwhile, all delivered ${recoveredInMs} ms after the resume; server closes during the freeze: ${serverCloses.slice(closesBefore).join(',') || 'none'}`)
  } finally {
    await page.close()
  }
})

test('in Chromium: a hidden page under intensive timer throttling keeps its connection (no false heartbeat timeout) and its publications', { skip, timeout: 240_000 }, async () => {
  const { page, cdp } = await openPage('hidden')
  try {
    // Freezing and resuming leaves the page hidden (visibilityState "hidden"), as a background tab.
    // Chromium closes a frozen page's WebSockets, so the client reconnects once; then it is left alone.
    await cdp.send('Page.setWebLifecycleState', { state: 'frozen' })
    await cdp.send('Page.setWebLifecycleState', { state: 'active' })
    assert.equal(await page.evaluate('document.visibilityState'), 'hidden')
    await until(page, 'window.__t.client.state === "connected" && window.__t.client.getSubscription("hidden").state === "subscribed"')
    await sleep(500)
    const closesBefore = serverCloses.length
    const statesBefore = ((await page.evaluate('window.__t.states.length')) as number)
    const ticksBefore = ((await page.evaluate('window.__t.ticks.at(-1)')) as number)
    const feed = publishing('hidden', 1000)
    // At least one throttled minute. Chromium starts the intensive throttling when its own
    // conditions hold (hidden past the grace, a chain of timers, the page silent), which on a
    // busy machine can be later than the grace: watch the page's own timer gaps until one spans
    // half a minute (it then stalled through a whole throttled wake-up period), bounded.
    await sleep(THROTTLE_GRACE_S * 1000 + 65_000)
    const gapsSince = async (): Promise<number[]> => {
      const ticks = (await page.evaluate('window.__t.ticks')) as number[]
      const recent = ticks.filter((x) => x > ticksBefore)
      return recent.slice(1).map((x, i) => x - (recent[i] as number))
    }
    const deadline = Date.now() + 90_000
    while (Math.max(0, ...(await gapsSince())) < 30_000 && Date.now() < deadline) await sleep(5_000)
    const published = await feed.stop()
    const t = (await page.evaluate('({ pubs: window.__t.pubs, states: window.__t.states })')) as { pubs: number[]; states: string[] }
    const gaps = await gapsSince()
    assert.ok(Math.max(...gaps) >= 30_000, `the page's timers were throttled to minutes (largest gap ${Math.max(...gaps)} ms)`)
    assert.deepEqual(t.states.slice(statesBefore), [], 'the connection never dropped')
    assert.deepEqual(serverCloses.slice(closesBefore), [], 'the server closed nothing')
    assert.deepEqual(t.pubs, consecutive(published), 'every publication, as it came')
  } finally {
    await page.close()
  }
})

test('in Chromium: the back/forward cache closes the socket; shown again, the page reconnects and recovers', { skip, timeout: 60_000 }, async () => {
  const { page } = await openPage('bfcache')
  try {
    await node.hf.publish('bfcache', { n: 1 })
    await page.waitForFunction('window.__t.pubs.length === 1')
    const connectionsBefore = node.hf.connectionCount
    await page.goto(`${pages.url}elsewhere`)
    const deadline = Date.now() + 5000
    while (node.hf.connectionCount >= connectionsBefore && Date.now() < deadline) await sleep(20)
    assert.equal(node.hf.connectionCount, connectionsBefore - 1, 'the cached page let go of its socket')
    for (let n = 2; n <= 4; n++) await node.hf.publish('bfcache', { n })
    await page.goBack({ waitUntil: 'commit' })
    await page.waitForFunction('window.__t.pubs.length === 4', undefined, { timeout: 10_000 })
    const t = (await page.evaluate('({ pubs: window.__t.pubs, shows: window.__t.shows, states: window.__t.states })')) as { pubs: number[]; shows: boolean[]; states: string[] }
    assert.deepEqual(t.shows.slice(-1), [true], 'the page came back from the back/forward cache, not reloaded')
    assert.deepEqual(t.pubs, [1, 2, 3, 4])
    assert.ok(t.states.some((s) => s.startsWith('disconnected:going_away:page entered the back/forward cache')), t.states.join(' | '))
    assert.ok(t.states.at(-1)?.startsWith('connected:'), t.states.join(' | '))
  } finally {
    await page.close()
  }
})
