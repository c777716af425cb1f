// The shipped browser builds in real headless Chromium: the ESM build speaks JSON without ever
// fetching the MessagePack chunk, and fetches it (and speaks MessagePack) only when asked; given
// `indexedDbStorage`, it fetches the storage and IndexedDB chunks, and only then; the script-tag build (window.Holdfast) works from plain <script> tags, with MessagePack from
// holdfast-msgpack.global.js.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, normalize } from 'node:path'
import { after, before, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, skipWithoutChromium } from '../../../test/support/chromium.js'
// @ts-expect-error: a plain .mjs build script without type declarations
import { buildBrowserBundles } from '../scripts/bundles.mjs'
import { SharedEngine, startNode, type Node } from '../../../test/support/real-server.js'

const skip = skipWithoutChromium

const ROUND_TRIP = (ws: string) => `
  const t = (window.__t = { got: [], acks: [] })
  const client = new HoldfastClient(${JSON.stringify(ws)}, { protocol: PROTOCOL, ...(typeof STORAGE === 'undefined' ? {} : { storage: STORAGE }) })
  client.subscribe(CHANNEL).on('publication', (p) => t.got.push(p.data))
  client.on('subscribed', () => {})
  client.connect()
  client.on('connected', () => client.publish(CHANNEL, { hello: PROTOCOL_NAME }).then((a) => t.acks.push(a.offset)))
`

const pages = (ws: string): Record<string, string> => ({
  '/esm-json': `<script type="module">import { HoldfastClient } from '/holdfast.js'
const PROTOCOL = 'json', PROTOCOL_NAME = 'json', CHANNEL = 'esm-json'
${ROUND_TRIP(ws)}</script>`,
  '/esm-msgpack': `<script type="module">import { HoldfastClient } from '/holdfast.js'
const PROTOCOL = 'msgpack', PROTOCOL_NAME = 'msgpack', CHANNEL = 'esm-msgpack'
${ROUND_TRIP(ws)}</script>`,
  '/esm-storage': `<script type="module">import { HoldfastClient, indexedDbStorage } from '/holdfast.js'
const PROTOCOL = 'json', PROTOCOL_NAME = 'json with storage', CHANNEL = 'esm-storage', STORAGE = indexedDbStorage('bundle-test')
${ROUND_TRIP(ws)}</script>`,
  '/global': `<script src="/holdfast.global.js"></script><script src="/holdfast-msgpack.global.js"></script><script>
const { HoldfastClient } = window.Holdfast
const PROTOCOL = 'msgpack', PROTOCOL_NAME = 'msgpack (script tag)', CHANNEL = 'global'
${ROUND_TRIP(ws)}</script>`,
})

let dir = ''
let server: Server
let base = ''
let engine: SharedEngine
let node: Node
let browser: Browser

before(async () => {
  if (skip !== false) return
  dir = await mkdtemp(join(tmpdir(), 'holdfast-bundles-'))
  await buildBrowserBundles(dir)
  engine = new SharedEngine()
  node = await startNode(engine)
  const html = pages(node.url)
  server = createServer((req, res) => {
    const path = req.url ?? '/'
    const page = html[path]
    if (page !== undefined) {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><meta charset="utf-8">${page}`)
      return
    }
    readFile(join(dir, normalize(path).replace(/^(\.\.[/\\])+/, ''))).then(
      (body) => res.writeHead(200, { 'content-type': 'text/javascript' }).end(body),
      () => res.writeHead(404).end(),
    )
  })
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  browser = await launchChromium()
})

after(async () => {
  if (skip !== false) return
  await browser?.close()
  await new Promise<void>((r) => server?.close(() => r()))
  await node?.stop()
  await engine?.close()
  await rm(dir, { recursive: true, force: true })
})

/** The wire codec of the server's connections, by name. */
const serverCodecs = () => [...(node.hf as unknown as { connections: Set<{ codec: { name: string } }> }).connections].map((c) => c.codec.name)

async function roundTrip(path: string): Promise<{ got: unknown[]; scripts: string[]; codecs: string[] }> {
  const page = await browser.newPage()
  try {
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(base + path)
    await page.waitForFunction('window.__t?.acks.length === 1 && window.__t.got.length === 1', undefined, { timeout: 10_000 })
    const codecs = serverCodecs()
    const got = (await page.evaluate('window.__t.got')) as unknown[]
    const scripts = (await page.evaluate("performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname)")) as string[]
    assert.deepEqual(errors, [])
    return { got, scripts, codecs }
  } finally {
    await page.close()
  }
}

test('in Chromium: the ESM build speaks JSON and never fetches the MessagePack chunk', { skip, timeout: 30_000 }, async () => {
  const r = await roundTrip('/esm-json')
  assert.deepEqual(r.got, [{ hello: 'json' }])
  assert.equal(r.codecs.at(-1), 'json', 'the newest connection on the server')
  assert.equal(r.scripts.filter((s) => s.includes('msgpack')).length, 0, r.scripts.join(' '))
  assert.equal(r.scripts.filter((s) => s.includes('persistence') || s.includes('indexed-db')).length, 0, r.scripts.join(' '))
})

test('in Chromium: with indexedDbStorage the ESM build fetches the storage and IndexedDB chunks and works through them', { skip, timeout: 30_000 }, async () => {
  const r = await roundTrip('/esm-storage')
  assert.deepEqual(r.got, [{ hello: 'json with storage' }])
  for (const chunk of ['/chunks/persistence-', '/chunks/indexed-db-']) {
    assert.equal(r.scripts.filter((s) => s.startsWith(chunk)).length, 1, `${chunk} in ${r.scripts.join(' ')}`)
  }
})

test('in Chromium: asked for MessagePack, the ESM build fetches its chunk and speaks it', { skip, timeout: 30_000 }, async () => {
  const r = await roundTrip('/esm-msgpack')
  assert.deepEqual(r.got, [{ hello: 'msgpack' }])
  assert.equal(r.codecs.at(-1), 'msgpack', 'the newest connection on the server')
  assert.equal(r.scripts.filter((s) => s.includes('msgpack-codec')).length, 1, r.scripts.join(' '))
})

test('in Chromium: the script-tag build (window.Holdfast) speaks MessagePack with holdfast-msgpack.global.js', { skip, timeout: 30_000 }, async () => {
  const r = await roundTrip('/global')
  assert.deepEqual(r.got, [{ hello: 'msgpack (script tag)' }])
  assert.equal(r.codecs.at(-1), 'msgpack', 'the newest connection on the server')
})
