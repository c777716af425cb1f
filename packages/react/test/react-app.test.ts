// @holdfast/react in real headless Chromium: a small chat app (test/app/main.ts) bundled with
// esbuild against React 19 and React 18 (development builds, rendered in StrictMode, which mounts
// every effect twice). Per React version: one subscribe on the wire for a channel used by four
// hooks; each publication listed once per list; presence follows a second tab; a publish shows
// queued while the node is down, survives a reload as "queued restored" and turns acked once the
// node is back, stored exactly once.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import { build, type Plugin } from 'esbuild'
import type { Browser, Page } from 'playwright-core'
import type { HoldfastOptions } from '@holdfast/server'
import { launchChromium, skipWithoutChromium } from '../../../test/support/chromium.js'
import { servePages, type Pages } from '../../client/test/helpers/browser-pages.js'
import { SharedEngine, startNode, type Node } from '../../../test/support/real-server.js'

const skip = skipWithoutChromium
const APP = fileURLToPath(new URL('./app/main.ts', import.meta.url))
const react18 = createRequire(fileURLToPath(new URL('../../../fixtures/react18/package.json', import.meta.url)))

/** Every `react` and `react-dom` import (the app's, @holdfast/react's, react-dom's own) goes to React 18. */
const useReact18: Plugin = {
  name: 'react-18',
  setup(b) {
    b.onResolve({ filter: /^react(-dom)?(\/.*)?$/ }, (args) => ({ path: react18.resolve(args.path) }))
  },
}

async function bundle(reactMajor: 18 | 19): Promise<string> {
  const out = await build({
    entryPoints: [APP],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    conditions: ['source'],
    define: { 'process.env.NODE_ENV': '"development"' },
    plugins: reactMajor === 18 ? [useReact18] : [],
    logLevel: 'silent',
  })
  return out.outputFiles[0]?.text ?? ''
}

let browser: Browser
let pages: Pages
const stops: Array<() => Promise<void>> = []

before(async () => {
  if (skip !== false) return
  pages = await servePages({ 'app-19.js': await bundle(19), 'app-18.js': await bundle(18) }, (path) => {
    const major = new URLSearchParams(path.slice(path.indexOf('?'))).get('react')
    return `<!doctype html><meta charset="utf-8"><title>chat</title><div id="root"></div><script type="module" src="/app-${major}.js"></script>`
  })
  browser = await launchChromium()
})

after(async () => {
  if (skip !== false) return
  for (const stop of stops.reverse()) await stop()
  await browser?.close()
  await pages?.close()
})

const text = (page: Page, selector: string) => page.locator(selector).innerText()

for (const reactMajor of [19, 18] as const) {
  test(`in Chromium, React ${reactMajor} StrictMode: one subscription, each publication once, presence, and a publish queued through a reload, then acked`, { skip, timeout: 90_000 }, async () => {
    const engine = new SharedEngine()
    stops.push(() => engine.close())
    const subscribes: string[] = []
    const options: HoldfastOptions = {
      channels: { namespaces: { chat: { presence: true, joinLeave: true } } },
      canSubscribe: ({ client, channel }) => {
        subscribes.push(`${client.client} ${channel}`)
        return true
      },
    }
    let node = await startNode(engine, options)
    const port = node.port
    stops.push(() => node.stop())
    const context = await browser.newContext()
    try {
      const url = `${pages.url}?react=${reactMajor}&ws=${encodeURIComponent(node.url)}&db=react${reactMajor}`
      const page = await context.newPage()
      const errors: string[] = []
      page.on('pageerror', (e) => errors.push(e.message))
      await page.goto(url)
      await page.waitForFunction('document.getElementById("state")?.textContent === "connected"')
      assert.match(await text(page, '#react'), new RegExp(`^${reactMajor}\\.`))
      await page.waitForFunction('document.getElementById("list-a")?.dataset.status === "subscribed" && document.getElementById("who")?.textContent === "1"')
      assert.equal(await page.evaluate('window.__mounts'), 2, 'StrictMode mounted every effect twice')
      assert.equal(subscribes.length, 1, `one subscribe on the wire for two lists and a presence hook in StrictMode: ${subscribes.join(', ')}`)

      for (let i = 1; i <= 3; i++) await node.hf.publish('chat:room', { text: `server ${i}` })
      await page.waitForFunction('document.querySelectorAll("#list-a li").length === 3 && document.querySelectorAll("#list-b li").length === 3')
      assert.equal(await text(page, '#list-a'), '1: server 1\n2: server 2\n3: server 3')
      assert.equal(await text(page, '#list-b'), await text(page, '#list-a'))

      const second = await context.newPage()
      await second.goto(url)
      await page.waitForFunction('document.getElementById("who").textContent === "2"', undefined, { timeout: 10_000 })
      await second.close()
      await page.waitForFunction('document.getElementById("who").textContent === "1"', undefined, { timeout: 10_000 })

      // Online: queued, then acked.
      await page.click('#send')
      await page.waitForFunction('document.querySelector("#outbox li")?.dataset.status === "acked"')
      assert.equal(await text(page, '#outbox'), 'message 1 acked @4')

      // The node goes away: the next publish stays queued, through a reload, until it is back.
      await node.stop()
      await page.waitForFunction('document.getElementById("state").textContent !== "connected"')
      await page.click('#send')
      await page.waitForFunction('document.querySelectorAll("#outbox li").length === 2')
      assert.equal(await text(page, '#outbox li:nth-child(2)'), 'message 2 queued')
      await page.waitForFunction('window.__client.queueSize === 1')
      await page.reload()
      await page.waitForFunction('document.querySelector("#outbox li")?.textContent === "message 2 queued restored"', undefined, { timeout: 10_000 })
      node = await startNode(engine, options, port)
      await page.waitForFunction('document.querySelector("#outbox li")?.dataset.status === "acked"', undefined, { timeout: 15_000 })
      assert.equal(await text(page, '#outbox'), 'message 2 acked restored @5')
      await page.waitForFunction('document.querySelectorAll("#list-a li").length === 1')
      assert.equal(await text(page, '#list-a'), '5: message 2', 'the reloaded page recovered from its stored position (after 4)')
      const history = (await node.hf.history('chat:room', { limit: 100 })).publications.map((p) => (p.data as { text: string }).text)
      assert.deepEqual(history, ['server 1', 'server 2', 'server 3', 'message 1', 'message 2'], 'each publish stored once')
      assert.deepEqual(errors, [])
    } finally {
      await context.close()
    }
  })
}
