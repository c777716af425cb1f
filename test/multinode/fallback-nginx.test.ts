/**
 * A page behind a proxy that refuses WebSocket upgrades chats through the HTTP-streaming fallback:
 * nginx answers every `Upgrade` request with 403 and proxies everything else to a `holdfast serve`
 * process; a page on another origin, in real headless Chromium, connects through it (two refused
 * upgrades, then the stream), subscribes, publishes and receives, and survives the node closing
 * its connection. The stream's records pass nginx unbuffered (`X-Accel-Buffering: no`).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runCli, cleanEnv } from '../../packages/cli/test/helpers.js'
import { clientBundle, servePages } from '../../packages/client/test/helpers/browser-pages.js'
import { launchChromium, requireChromium, skipWithoutChromium } from '../support/chromium.js'
import { NGINX, requireBinary } from './fleet.js'
import { Nginx } from './nginx.js'

const PAGE = (ws: string) => `<!doctype html><meta charset="utf-8"><title>chat</title>
<script type="module">
import { HoldfastClient } from '/client.js'
const t = (window.__t = { got: [], acks: [], states: [], refused: 0 })
const client = new HoldfastClient(${JSON.stringify(ws)}, { minReconnectDelayMs: 50, maxReconnectDelayMs: 300 })
t.client = client
client.on('state', (s) => t.states.push(s.to + ':' + s.reason.message))
const sub = client.subscribe('chat')
sub.on('publication', (p) => t.got.push(p.data.text))
client.connect()
t.say = (text) => client.publish('chat', { text }).then((a) => t.acks.push(a.offset))
</script>`

test('in Chromium behind an nginx that refuses upgrades: the page chats through the HTTP-streaming fallback', { skip: skipWithoutChromium, timeout: 90_000 }, async (t) => {
  if (!requireBinary(t, NGINX, 'nginx')) return
  requireChromium()
  const serve = runCli(['serve', '--port', '0', '--log-level', 'warn', '--ping-interval', '2s'], cleanEnv())
  t.after(async () => {
    serve.child.kill('SIGKILL')
    await serve.exited
  })
  const m = await serve.waitForLine(/^holdfast listening on http:\/\/127\.0\.0\.1:(\d+) /)
  const upstream = `127.0.0.1:${m[1]}`
  const nginx = await Nginx.serve(
    t,
    async (listen) => `server {
    listen ${listen};
    location / {
        # A proxy that refuses WebSocket upgrades, as some corporate proxies do.
        if ($http_upgrade != "") { return 403; }
        proxy_pass http://${upstream};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 60s;
    }
}
`,
  )
  const pages = await servePages({ 'client.js': await clientBundle() }, () => PAGE(nginx.wsUrl))
  t.after(() => pages.close())
  const browser = await launchChromium()
  t.after(() => browser.close())
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(pages.url)
  await page.waitForFunction('window.__t.client.getSubscription("chat")?.state === "subscribed"', undefined, { timeout: 20_000 })
  const states = (await page.evaluate('window.__t.states')) as string[]
  assert.equal(states.filter((s) => s.startsWith('connecting')).length, 3, `two WebSocket attempts, then the fallback: ${states.join(' | ')}`)

  await page.evaluate('window.__t.say("hello through the proxy")')
  await page.waitForFunction('window.__t.acks.length === 1 && window.__t.got.length === 1')
  // Server pings (every 2 s) and their pongs cross the proxy: the connection stays up.
  await new Promise((r) => setTimeout(r, 5000))
  assert.equal(await page.evaluate('window.__t.client.state'), 'connected')
  for (let i = 2; i <= 4; i++) await page.evaluate(`window.__t.say("message ${i}")`)
  await page.waitForFunction('window.__t.got.length === 4')
  assert.deepEqual(await page.evaluate('window.__t.got'), ['hello through the proxy', 'message 2', 'message 3', 'message 4'])
  assert.deepEqual(await page.evaluate('window.__t.acks'), [1, 2, 3, 4])
  assert.deepEqual(errors, [])
  assert.match(nginx.errorLog(), /^(?![\s\S]*\[error\])/, 'nginx logged no errors')
})
