// The admin dashboard in real headless Chromium against a real `holdfast serve --admin-secret`
// process: a wrong secret is refused, the right one logs in, the live feed follows three Node
// clients connecting and leaving, a publish from the form reaches a subscribed client, and a
// disconnect from the form closes a user's client with 4012 (kicked). Needs /usr/bin/chromium.
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import WebSocket from 'ws'
import { HoldfastClient, type PublicationEvent, type StateChange } from '@holdfast/client'
import { mintToken } from '@holdfast/server/internal'
import { launchChromium, requireChromium, skipWithoutChromium } from '../../../test/support/chromium.js'
import { ARTIFACTS, buildPages, runCli, startServe, tscErrors, within } from './helpers.js'

const ADMIN_SECRET = 'admin-secret-for-the-browser-test'
const TOKEN_SECRET = 'token-secret-for-the-browser-test-0123456789'

const skip = skipWithoutChromium

interface Snapshot {
  feed: string | null
  nodes: string | null
  connections: string | null
  nodeRows: number
  channels: Record<string, string>
  presence: string[]
  publishResult: string | null
  disconnectResult: string | null
  chartPoints: number
  chartSeries: number
  canvases: number
}

// Plain JavaScript text: a function handed to page.evaluate would be serialised after tsx compiled it.
const SNAPSHOT = `(() => {
  const q = (id) => document.querySelector('[data-testid="' + id + '"]')
  const all = (id) => Array.from(document.querySelectorAll('[data-testid="' + id + '"]'))
  const channels = {}
  for (const tr of all('channel-row')) channels[tr.dataset.channel] = tr.querySelector('[data-testid="channel-subscribers"]').textContent
  return {
    feed: q('feed')?.dataset.state ?? null,
    nodes: q('node-count')?.textContent ?? null,
    connections: q('total-connections')?.textContent ?? null,
    nodeRows: all('node-row').length,
    channels,
    presence: all('presence-client').map((li) => li.querySelector('strong').textContent),
    publishResult: q('publish-result')?.textContent ?? null,
    disconnectResult: q('disconnect-result')?.textContent ?? null,
    chartPoints: Number(q('chart-connections')?.dataset.points ?? 0),
    chartSeries: Number(q('chart-connections')?.dataset.series ?? 0),
    canvases: document.querySelectorAll('[data-testid="chart-connections"] canvas').length,
  }
})()`

const snapshot = (page: Page): Promise<Snapshot> => page.evaluate(SNAPSHOT) as Promise<Snapshot>

/**
 * Wait until `condition` (JavaScript over the snapshot `s`) holds; on timeout say what the page
 * showed. Polled from here with page.evaluate: waitForFunction compiles its predicate with eval
 * inside the page, which the dashboard's CSP (rightly) forbids.
 */
async function until(page: Page, what: string, condition: string, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout
  for (;;) {
    if ((await page.evaluate(`(() => { const s = ${SNAPSHOT}; return ${condition} })()`)) === true) return
    if (Date.now() > deadline) {
      const seen = await snapshot(page).catch((e: unknown) => `(no snapshot: ${String(e)})`)
      throw new Error(`timed out after ${timeout} ms waiting for ${what}\npage: ${JSON.stringify(seen, null, 2)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

interface User {
  name: string
  client: HoldfastClient
  publications: PublicationEvent[]
  states: StateChange[]
}

async function connectUser(wsUrl: string, name: string): Promise<User> {
  const token = await mintToken({ secret: TOKEN_SECRET, sub: name, ttl: '10m' })
  const client = new HoldfastClient(wsUrl, { token, WebSocket })
  const u: User = { name, client, publications: [], states: [] }
  client.on('state', (c) => u.states.push(c))
  const sub = client.subscribe('chat:lobby')
  sub.on('publication', (p) => u.publications.push(p))
  const subscribed = new Promise<void>((resolve) => sub.on('subscribed', () => resolve()))
  client.connect()
  await within(10_000, `${name} subscribed to chat:lobby`, subscribed)
  return u
}

/** Resolves with the state change that matches, however long ago it happened. */
function stateChange(u: User, what: string, match: (c: StateChange) => boolean, ms = 10_000): Promise<StateChange> {
  return within(
    ms,
    `${u.name}: ${what}`,
    new Promise<StateChange>((resolve) => {
      const seen = u.states.find(match)
      if (seen !== undefined) return resolve(seen)
      const on = (c: StateChange): void => {
        if (!match(c)) return
        u.client.off('state', on)
        resolve(c)
      }
      u.client.on('state', on)
    }),
  )
}

async function newPage(browser: Browser, problems: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.setDefaultTimeout(15_000)
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`)
  })
  page.on('pageerror', (err) => problems.push(`pageerror: ${String(err)}`))
  return page
}

async function logIn(page: Page, url: string): Promise<void> {
  await page.goto(`${url}/admin`)
  await page.getByTestId('secret').fill(ADMIN_SECRET)
  await page.getByTestId('login').click()
  await page.waitForURL(`${url}/admin`)
}

describe('admin dashboard in headless Chromium', () => {
  test('the dashboard source type-checks (strict, DOM)', async () => {
    const r = await tscErrors('packages/cli/admin')
    assert.equal(r, '', r)
  })

  test('log in, watch clients come and go, publish and disconnect from the forms', { skip }, async (t) => {
    requireChromium()
    await buildPages()

    // Presence on for chat: so that the presence panel has something to show.
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-admin-'))
    const config = join(dir, 'holdfast.json')
    writeFileSync(config, JSON.stringify({ channels: { namespaces: { chat: { presence: true } } } }))
    const server = await startServe(['--admin-secret', ADMIN_SECRET, '--token-secret', TOKEN_SECRET, '--config', config, '--log-level', 'warn'])
    t.after(() => server.child.kill('SIGKILL'))

    const browser = await launchChromium()
    t.after(() => browser.close())
    const problems: string[] = []
    const page = await newPage(browser, problems)

    // A wrong secret: 401 and the login form again, with the error.
    await page.goto(`${server.url}/admin`)
    await page.getByTestId('secret').fill('not the secret')
    const [refused] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/admin/login')), page.getByTestId('login').click()])
    assert.equal(refused.status(), 401)
    assert.equal(await page.getByTestId('login-error').textContent(), 'Wrong secret.')
    assert.equal(await page.getByTestId('feed').count(), 0, 'no dashboard after a wrong secret')

    // The 401 page itself logs a console error in Chromium (a failed document load is reported
    // as such); only what happens after the login counts.
    problems.length = 0
    await logIn(page, server.url)
    await until(page, 'the live feed with this node and the dashboard’s own connection', `s.feed === 'live' && s.nodes === '1' && s.connections === '1' && s.nodeRows === 1`)

    const wsUrl = server.wsUrl
    const users = await Promise.all(['alice', 'bob', 'carol'].map((name) => connectUser(wsUrl, name)))
    t.after(() => {
      for (const u of users) u.client.close()
    })
    await until(page, 'three more connections and their channel', `s.connections === '4' && s.channels['chat:lobby'] === '3'`)

    // Presence of the channel, picked from the channel table.
    await page.locator('[data-testid="channel-row"][data-channel="chat:lobby"] button').click()
    await until(page, 'the presence of chat:lobby', `JSON.stringify(s.presence) === '["alice","bob","carol"]'`)
    assert.equal(await page.getByTestId('publish-channel').inputValue(), 'chat:lobby', 'picking a channel fills the publish form')

    // Publish from the form: every subscriber gets it.
    await page.getByTestId('publish-data').fill('{"text": "hello from the dashboard"}')
    await page.getByTestId('publish').click()
    await until(page, 'the publish result', `/^Published to chat:lobby at offset \\d+\\.$/.test(s.publishResult)`)
    for (const u of users) {
      await within(10_000, `${u.name} to receive the dashboard’s publication`, (async () => {
        while (!u.publications.some((p) => JSON.stringify(p.data) === '{"text":"hello from the dashboard"}')) await new Promise((r) => setTimeout(r, 20))
      })())
    }

    // Disconnect bob from the form: his client is closed with 4012 and does not come back.
    const bob = users[1] as User
    await page.getByTestId('disconnect-kind').selectOption('user')
    await page.getByTestId('disconnect-id').fill('bob')
    await page.getByTestId('disconnect').click()
    const kicked = await stateChange(bob, 'closed with 4012', (c) => c.to === 'closed')
    assert.equal(kicked.reason.code, 4012)
    assert.equal(kicked.reason.name, 'kicked')
    await until(page, 'the disconnect result and one connection less', `s.disconnectResult === 'Disconnected user bob on every node.' && s.connections === '3' && s.channels['chat:lobby'] === '2'`)
    for (const u of [users[0], users[2]] as User[]) assert.equal(u.client.state, 'connected', `${u.name} stays connected`)
    await until(page, 'the presence without bob', `JSON.stringify(s.presence) === '["alice","carol"]'`)

    // A few seconds of history in the charts make the screenshot worth looking at.
    await until(page, 'a line in the connections chart', 's.canvases === 1 && s.chartPoints >= 2')
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })

    // The others leave: back to the dashboard alone.
    for (const u of users) u.client.close()
    await until(page, 'the clients gone', `s.connections === '1' && Object.keys(s.channels).length === 0`)
    assert.deepEqual(problems, [], 'no console errors or uncaught exceptions on the dashboard')

    // Log out: the login form again, and the actions refuse the old session.
    await page.getByTestId('logout').click()
    await page.getByTestId('login-form').waitFor()
    const after = await page.evaluate(`fetch('/admin/api/nodes', { headers: { 'x-holdfast-admin': '1' } }).then((r) => r.status)`)
    assert.equal(after, 401)
  })
  test('two workers: each node publishes its own numbers and the page shows both', { skip }, async (t) => {
    requireChromium()
    await buildPages()
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-admin-'))
    const config = join(dir, 'holdfast.json')
    writeFileSync(config, JSON.stringify({ channels: { namespaces: { chat: { presence: true } } } }))
    const server = runCli(['serve', '--port', '0', '--workers', '2', '--admin-secret', ADMIN_SECRET, '--token-secret', TOKEN_SECRET, '--config', config, '--drain-ms', '200', '--log-level', 'warn'])
    t.after(async () => {
      // SIGTERM: the primary drains its workers; SIGKILL only if that hangs.
      server.child.kill('SIGTERM')
      await within(15_000, 'serve --workers 2 to exit', server.exited).catch(() => server.child.kill('SIGKILL'))
    })
    const m = await server.waitForLine(/^holdfast listening on (http:\/\/\S+) \((ws:\/\/\S+)\) engine=memory workers=2$/)
    const [url, wsUrl] = [m[1] as string, m[2] as string]

    const browser = await launchChromium()
    t.after(() => browser.close())
    const problems: string[] = []
    const page = await newPage(browser, problems)
    await logIn(page, url)
    await until(page, 'the feed', `s.feed === 'live'`)

    // The primary hands connections to the workers in turn: with several clients both get some.
    const users = await Promise.all(['ann', 'ben', 'cy', 'dee', 'eve', 'fay'].map((name) => connectUser(wsUrl, name)))
    t.after(() => {
      for (const u of users) u.client.close()
    })
    await until(page, 'both nodes, each with a line, and every connection counted', `s.nodes === '2' && s.nodeRows === 2 && s.chartSeries >= 2 && s.connections === '7' && s.channels['chat:lobby'] === '6'`)
    const perNode = (await page.locator('[data-testid="node-connections"]').allTextContents()).map(Number)
    assert.equal(perNode.length, 2)
    assert.equal(perNode.reduce((a, b) => a + b, 0), 7)
    assert.ok(perNode.every((n) => n > 0), `connections per node: ${perNode.join(', ')}`)
    // A few seconds of traffic, so that the screenshot shows the lines of both nodes.
    const traffic = setInterval(() => {
      for (const u of users) void u.client.publish('chat:lobby', { at: Date.now() }).catch(() => {})
    }, 250)
    t.after(() => clearInterval(traffic))
    await new Promise((r) => setTimeout(r, 4000))
    clearInterval(traffic)
    for (const u of users.slice(0, 2)) u.client.close()
    await until(page, 'two clients gone', `s.connections === '5'`)

    // Presence and publish reach across the workers (their shared engine).
    await page.locator('[data-testid="channel-row"][data-channel="chat:lobby"] button').click()
    await until(page, 'the presence on both nodes', `JSON.stringify(s.presence) === '["cy","dee","eve","fay"]'`)
    await page.getByTestId('publish-data').fill('{"text": "to every worker"}')
    await page.getByTestId('publish').click()
    await until(page, 'the publish result', `/^Published to chat:lobby at offset \\d+\\.$/.test(s.publishResult)`)
    for (const u of users.slice(2)) {
      await within(10_000, `${u.name} to receive the dashboard’s publication`, (async () => {
        while (!u.publications.some((p) => JSON.stringify(p.data) === '{"text":"to every worker"}')) await new Promise((r) => setTimeout(r, 20))
      })())
    }
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-workers.png'), fullPage: true })
    assert.deepEqual(problems, [], 'no console errors or uncaught exceptions on the dashboard')
  })
})
