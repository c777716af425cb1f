// The chat demo in real headless Chromium against real `holdfast serve` processes: two pages chat,
// the server is killed (SIGKILL) and a new one starts on the same port; both pages show the
// reconnect, a message typed meanwhile waits in the queue and is delivered exactly once, and the
// lost history is reported. Needs /usr/bin/chromium (apt package `chromium`).
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { launchChromium, requireChromium, skipWithoutChromium } from '../../../test/support/chromium.js'
import { ARTIFACTS, buildPages, runCli, startServe, tscErrors, within, type CliProcess } from './helpers.js'

const LISTENING = /^holdfast listening on (http:\/\/\S+) \((ws:\/\/\S+)\) engine=memory$/

const skip = skipWithoutChromium

// Functions handed to page.evaluate would be serialised after tsx compiled them (with helper calls
// that do not exist in the page), so the page-side code is plain JavaScript text.
const PAGE_HELPERS = `
window.__demo = {
  snapshot() {
    const q = (id) => document.querySelector('[data-testid="' + id + '"]')
    const all = (id) => Array.from(document.querySelectorAll('[data-testid="' + id + '"]'))
    const notice = q('notice')
    return {
      conn: q('conn')?.dataset.state ?? null,
      label: q('conn-label')?.textContent ?? null,
      queued: q('queued')?.textContent ?? null,
      notice: notice !== null && !notice.hidden,
      sub: q('chat')?.dataset.subState ?? null,
      error: q('chat-error')?.hidden === false ? q('chat-error').textContent : null,
      messages: all('message').map((li) => ({
        key: li.dataset.key,
        name: li.querySelector('[data-testid="message-name"]')?.textContent ?? '',
        text: li.querySelector('[data-testid="message-text"]')?.textContent ?? '',
      })),
      pending: all('pending-message').map((li) => li.textContent),
      failed: all('failed-message').map((li) => li.textContent),
    }
  },
}
`

interface Snapshot {
  conn: string | null
  label: string | null
  queued: string | null
  notice: boolean
  sub: string | null
  error: string | null
  messages: { key: string; name: string; text: string }[]
  pending: string[]
  failed: string[]
}

type Phase = 'up' | 'outage' | 'back' | 'offline' | 'online'

interface Chat {
  who: string
  page: Page
  /** Console errors and uncaught exceptions, with the phase of the test they happened in. */
  problems: { phase: Phase; kind: 'console' | 'pageerror'; text: string }[]
}

const snapshot = (page: Page): Promise<Snapshot> => page.evaluate('window.__demo.snapshot()') as Promise<Snapshot>

/**
 * Wait until `condition` (JavaScript over the page snapshot `s`) holds, polling in the page; on
 * timeout, fail with what was awaited and what the page showed.
 */
async function until(chat: Chat, what: string, condition: string, timeout = 15_000): Promise<void> {
  // Polled from here with page.evaluate, not with waitForFunction: its in-page polling evaluates
  // the condition as a string, which the page's CSP (no unsafe-eval) rightly refuses.
  const deadline = performance.now() + timeout
  let last: unknown
  for (;;) {
    try {
      if ((await chat.page.evaluate(`(() => { const s = window.__demo.snapshot(); return ${condition} })()`)) === true) return
    } catch (err) {
      last = err
    }
    if (performance.now() > deadline) break
    await new Promise((r) => setTimeout(r, 50))
  }
  const seen = await snapshot(chat.page).catch((e: unknown) => `(no snapshot: ${String(e)})`)
  throw new Error(`${chat.who}: timed out after ${timeout} ms waiting for ${what}\npage: ${JSON.stringify(seen, null, 2)}`, { cause: last })
}

const showsTexts = (texts: string[]): string => `${JSON.stringify(texts)}.every((t) => s.messages.some((m) => m.text === t))`

async function send(chat: Chat, text: string): Promise<void> {
  await chat.page.getByTestId('message-input').fill(text)
  await chat.page.getByTestId('send').click()
}

async function openChat(browser: Browser, url: string, who: string, phase: () => Phase): Promise<Chat> {
  const context = await browser.newContext({ viewport: { width: 820, height: 760 } })
  const page = await context.newPage()
  page.setDefaultTimeout(15_000)
  const chat: Chat = { who, page, problems: [] }
  page.on('console', (m) => {
    if (m.type() === 'error') chat.problems.push({ phase: phase(), kind: 'console', text: m.text() })
  })
  page.on('pageerror', (err) => chat.problems.push({ phase: phase(), kind: 'pageerror', text: String(err) }))
  await page.addInitScript(PAGE_HELPERS)
  await page.goto(url)
  await until(chat, 'the first connection', `s.conn === 'connected' && s.label === 'connected'`)
  await page.getByTestId('name').fill(who)
  await page.getByTestId('room').fill('e2e')
  await page.getByTestId('join').click()
  await until(chat, 'the room subscription', `s.sub === 'subscribed'`)
  return chat
}

describe('demo page in headless Chromium', () => {
  test('the demo source type-checks (strict, DOM)', async () => {
    const r = await tscErrors('packages/cli/demo')
    assert.equal(r, '', r)
  })

  test('two pages chat through a server kill and restart: reconnecting, queued, recovered:false, exactly once', { skip }, async (t) => {
    requireChromium()
    await buildPages()

    const servers: CliProcess[] = []
    t.after(() => {
      for (const s of servers) s.child.kill('SIGKILL')
    })
    const first = await startServe(['--log-level', 'warn'])
    servers.push(first)
    const port = new URL(first.url).port

    const browser = await launchChromium()
    t.after(() => browser.close())

    let phase: Phase = 'up'
    const alice = await openChat(browser, first.url, 'alice', () => phase)
    const bob = await openChat(browser, first.url, 'bob', () => phase)
    const both = [alice, bob]

    // Both ways, each message seen by both pages before the next one.
    await send(alice, 'hello from alice')
    for (const c of both) await until(c, 'alice’s message', showsTexts(['hello from alice']))
    await send(bob, 'hi from bob')
    for (const c of both) await until(c, 'bob’s message', showsTexts(['hello from alice', 'hi from bob']))
    for (const c of both) {
      const s = await snapshot(c.page)
      assert.deepEqual(s.messages.map((m) => [m.name, m.text]), [['alice', 'hello from alice'], ['bob', 'hi from bob']], c.who)
      assert.equal(s.notice, false, `${c.who}: no "history lost" notice before the restart`)
      assert.equal(s.queued, '0', c.who)
    }

    // kill -9: no drain, no close frame; the in-memory history dies with the process.
    phase = 'outage'
    first.child.kill('SIGKILL')
    await within(10_000, 'the killed server to exit', first.exited)
    for (const c of both) {
      await until(c, 'the reconnect countdown', `s.conn === 'reconnecting' && /^reconnecting in \\d+ s$/.test(s.label)`)
    }

    await send(alice, 'sent while offline')
    await until(alice, 'the offline message in the queue', `s.queued === '1' && s.pending.some((p) => p.includes('sent while offline'))`)
    for (const c of both) {
      const s = await snapshot(c.page)
      assert.equal(s.conn, 'reconnecting', `${c.who} while the server is down`)
      assert.match(s.label ?? '', /^reconnecting( in \d+ s|…)$/, c.who)
    }
    await alice.page.screenshot({ path: join(ARTIFACTS, 'demo-reconnecting.png'), fullPage: true })

    const second = runCli(['serve', '--port', port, '--log-level', 'warn'])
    servers.push(second)
    const m = await second.waitForLine(LISTENING)
    assert.equal(m[1], first.url, 'the new server listens where the old one did')

    // Within the client's backoff (capped at 20 s by default, and it has only just started growing).
    for (const c of both) await until(c, 'the reconnect', `s.conn === 'connected' && s.label === 'connected'`, 40_000)
    phase = 'back'
    for (const c of both) {
      await until(c, 'the "history was lost" notice (recovered:false)', `s.notice === true && s.sub === 'subscribed'`)
      await until(c, 'the queued message', showsTexts(['sent while offline']))
    }
    await until(alice, 'an empty queue', `s.queued === '0' && s.pending.length === 0`)

    // A last message after the queued one: streams are ordered, so once it is shown any duplicate
    // of an earlier publication would have been shown too.
    await send(bob, 'back online')
    for (const c of both) await until(c, 'the message after the restart', showsTexts(['back online']))

    // The browser's own offline signal: the SDK drops at once and waits for `online`, no timer.
    phase = 'offline'
    await bob.page.context().setOffline(true)
    await until(bob, 'the offline state', `s.conn === 'offline' && s.label === 'offline'`)
    await bob.page.context().setOffline(false)
    await until(bob, 'the reconnect after going online', `s.conn === 'connected' && s.sub === 'subscribed'`)
    phase = 'online'

    const expected = [
      ['alice', 'hello from alice'],
      ['bob', 'hi from bob'],
      ['alice', 'sent while offline'],
      ['bob', 'back online'],
    ]
    for (const c of both) {
      const s = await snapshot(c.page)
      assert.deepEqual(s.messages.map((x) => [x.name, x.text]), expected, `${c.who}: every message once, in order`)
      assert.equal(new Set(s.messages.map((x) => x.key)).size, s.messages.length, `${c.who}: stream positions are unique`)
      assert.deepEqual(s.failed, [], `${c.who}: no failed sends`)
      assert.equal(s.error, null, `${c.who}: no error shown`)
      assert.equal(s.queued, '0', c.who)

      assert.deepEqual(c.problems.filter((p) => p.kind === 'pageerror'), [], `${c.who}: uncaught exceptions`)
      assert.deepEqual(c.problems.filter((p) => p.phase !== 'outage' && p.phase !== 'offline'), [], `${c.who}: console errors while the server was up`)
      // While the browser is offline, a request in flight (a fallback stream, a discovery fetch)
      // fails with Chromium's own offline error; nothing else is expected.
      const offline = c.problems.filter((p) => p.phase === 'offline' && !/net::ERR_INTERNET_DISCONNECTED|^WebSocket connection to 'ws:\/\/[^']+\/ws' failed/.test(p.text))
      assert.deepEqual(offline, [], `${c.who}: console errors while offline`)
      // While the server is down Chromium itself logs each refused WebSocket; nothing else is expected.
      // Attempts against the stopped server: WebSocket ones, and the HTTP-streaming fallback's
      // (refused, or a stream id the new process does not know).
      const unexpected = c.problems.filter((p) => p.phase === 'outage' && !/^WebSocket connection to 'ws:\/\/[^']+\/ws' failed|^Failed to load resource: (net::ERR_CONNECTION_REFUSED|the server responded with a status of 404 \(Not Found\))$/.test(p.text))
      assert.deepEqual(unexpected, [], `${c.who}: console errors during the outage`)
    }

    await alice.page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true })
  })
})
