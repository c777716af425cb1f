/**
 * Scenario 9 — 1,000 connection attempts with bad tokens against a node that requires them
 * (`serve --token-secret`), while authenticated clients keep publishing and receiving.
 *
 * The bad tokens: signed with another secret, expired, `alg: none`, a tampered payload under the
 * original signature, a truncated signature, garbage, and none at all. Half are presented in the
 * upgrade request (`Authorization: Bearer`, or `?token=`), which the node must refuse with HTTP
 * 401 before any WebSocket exists; half in the `connect` command, which must end with the
 * `unauthorized` close (4009), or `token_expired` (4008) for the expired one, as docs/protocol.md
 * says — and commands pipelined behind that connect (a subscribe and a publish) must do nothing. None gets in, none harms the others: the authenticated subscribers
 * lose nothing and are never disconnected, and the node's connection count is back to where it
 * was. Attempts come from ten source addresses at the node's default per-IP limits.
 */
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { describe, it } from 'node:test'
import WebSocket from 'ws'
import { mintToken } from '@holdfast/server/internal'
import { CloseCodes } from '@holdfast/protocol'
import { DEEP_HISTORY, makeClient, metric, result, sleep, startSingle, until } from './harness.js'
import { AppLog, assertClean, checkHistory, drain, Publisher, summary } from './history.js'

const SECRET = 'chaos-token-secret-0123456789abcdef0123456789'
const ATTEMPTS = 1000
const CONCURRENCY = 50
const ADDRESSES = Array.from({ length: 10 }, (_, i) => `127.0.0.${20 + i}`)
const CHANNEL = 'auth:feed'

const b64url = (v: string | Buffer): string => Buffer.from(v).toString('base64url')

/** An HS256 JWT over `claims` with `secret`, built by hand so that it can be wrong in every way. */
function jwt(claims: Record<string, unknown>, secret: string, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }): string {
  const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`
  return `${signing}.${createHmac('sha256', secret).update(signing).digest('base64url')}`
}

const nowS = (): number => Math.floor(Date.now() / 1000)

/** name → a bad token (undefined: none at all). */
const BAD: Record<string, () => string | undefined> = {
  'wrong-secret': () => jwt({ sub: 'mallory', iat: nowS(), exp: nowS() + 3600 }, 'another-secret-entirely-0123456789abcdef'),
  expired: () => jwt({ sub: 'mallory', iat: nowS() - 7200, exp: nowS() - 3600 }, SECRET),
  'alg-none': () => `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub: 'mallory', exp: nowS() + 3600 }))}.`,
  tampered: () => {
    const [h, , s] = jwt({ sub: 'alice', iat: nowS(), exp: nowS() + 3600 }, SECRET).split('.')
    return `${h}.${b64url(JSON.stringify({ sub: 'admin', iat: nowS(), exp: nowS() + 3600 }))}.${s}`
  },
  truncated: () => jwt({ sub: 'mallory', iat: nowS(), exp: nowS() + 3600 }, SECRET).slice(0, -5),
  garbage: () => 'not.a.jwt-at-all',
  missing: () => undefined,
}

type Where = 'header' | 'query' | 'connect'

/** One attempt; resolves with how it ended: `http 401`, `close 4009`, or what else happened (a failure). */
function attempt(baseUrl: string, token: string | undefined, where: Where, localAddress: string): Promise<string> {
  const url = where === 'query' && token !== undefined ? `${baseUrl}?token=${encodeURIComponent(token)}` : baseUrl
  const headers = where === 'header' && token !== undefined ? { authorization: `Bearer ${token}` } : undefined
  const ws = new WebSocket(url, ['holdfast.v1.json'], { localAddress, ...(headers === undefined ? {} : { headers }) })
  return new Promise((resolve) => {
    let outcome = ''
    let gotIn = false
    const timer = setTimeout(() => {
      ws.terminate()
      resolve(`hung (${outcome})`)
    }, 10_000)
    const end = (what: string): void => {
      clearTimeout(timer)
      resolve(gotIn ? `GOT IN, then ${what}` : what)
    }
    ws.on('error', () => {})
    ws.on('unexpected-response', (_req, res) => {
      res.resume()
      ws.terminate()
      end(`http ${res.statusCode}`)
    })
    ws.on('open', () => {
      // The connect, and behind it in the same frame what an intruder would want to do next.
      const cmds = [
        { id: 1, type: 'connect', version: 1, ...(where === 'connect' && token !== undefined ? { token } : {}) },
        { id: 2, type: 'subscribe', channel: CHANNEL },
        { id: 3, type: 'publish', channel: CHANNEL, data: { intruder: true }, msgId: 'intruder' },
      ]
      ws.send(cmds.map((c) => JSON.stringify(c)).join('\n'))
    })
    ws.on('message', (data) => {
      for (const line of data.toString().split('\n')) {
        if (line === '') continue
        const m = JSON.parse(line) as { id?: number; result?: unknown; type?: string }
        if (m.result !== undefined || m.type === 'pub') gotIn = true
        outcome += `${line.slice(0, 80)} `
      }
    })
    ws.on('close', (code) => end(`close ${code}`))
  })
}

describe('chaos: connection attempts with bad tokens', () => {
  it(`${ATTEMPTS} attempts with bad tokens: none gets in (401, 4009, or 4008 when expired), none harms the others`, async (t) => {
    const node = await startSingle(t, DEEP_HISTORY, ['--token-secret', SECRET])
    const token = (sub: string): Promise<string> => mintToken({ secret: SECRET, sub, ttl: '1h' })
    const logs: AppLog[] = []
    for (let i = 0; i < 10; i++) {
      const c = makeClient(t, node.wsUrl, { token: await token(`user${i}`) })
      logs.push(new AppLog(c, `s${i}`, CHANNEL))
      c.connect()
    }
    await Promise.all(logs.map((l) => l.until('the first subscribe', () => l.subscribes.length > 0, 10_000)))
    const publisher = new Publisher(makeClient(t, node.wsUrl, { token: await token('publisher') }), 'p0')
    publisher.client.connect()
    publisher.start([CHANNEL], 20)
    await Promise.all(logs.map((l) => l.until('live publications', () => l.pubs.length >= 10, 10_000)))
    const connectionsBefore = await metric(node.url, 'holdfast_connections')

    const kinds = Object.keys(BAD)
    const wheres: Where[] = ['connect', 'header', 'connect', 'query']
    const outcomes = new Map<string, number>()
    const byKind = new Map<string, Set<string>>()
    let next = 0
    const started = performance.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < ATTEMPTS; i = next++) {
          const kind = kinds[i % kinds.length] as string
          const where = wheres[Math.floor(i / kinds.length) % wheres.length] as Where
          const outcome = await attempt(node.wsUrl, (BAD[kind] as () => string | undefined)(), where, ADDRESSES[i % ADDRESSES.length] as string)
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
          let set = byKind.get(`${kind} in ${where}`)
          if (set === undefined) byKind.set(`${kind} in ${where}`, (set = new Set()))
          set.add(outcome)
        }
      }),
    )
    const attemptsMs = performance.now() - started
    t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))} in ${Math.round(attemptsMs)} ms`)
    t.diagnostic(`by kind: ${JSON.stringify(Object.fromEntries([...byKind].map(([k, v]) => [k, [...v]])))}`)

    await sleep(1000)
    const acks = await publisher.stop(10_000)
    await drain(logs, acks, 10_000)
    const report = checkHistory(acks, logs)
    t.diagnostic(summary(report))
    await until('the refused connections to be gone', async () => (await metric(node.url, 'holdfast_connections')) === connectionsBefore, 10_000, 100)
    const refused401 = outcomes.get('http 401') ?? 0
    const closed4009 = outcomes.get(`close ${CloseCodes.unauthorized.code}`) ?? 0
    const closed4008 = outcomes.get(`close ${CloseCodes.token_expired.code}`) ?? 0
    result(t, 'bad-tokens', {
      attempts: ATTEMPTS,
      http401: refused401,
      close4009: closed4009,
      close4008: closed4008,
      other: ATTEMPTS - refused401 - closed4009 - closed4008,
      attemptsPerSecond: Math.round(ATTEMPTS / (attemptsMs / 1000)),
      published: acks.length,
      lost: report.lost,
      duplicated: report.duplicated,
    })
    assert.equal(refused401 + closed4009 + closed4008, ATTEMPTS, `every attempt was refused with 401 or closed with 4009/4008: ${JSON.stringify(Object.fromEntries(outcomes))}`)
    for (const [k, set] of byKind) {
      // No token in the request means the connect command decides, whatever the transport.
      const inConnect = k.endsWith('connect') || k.startsWith('missing')
      const code = k.startsWith('expired') ? CloseCodes.token_expired.code : CloseCodes.unauthorized.code
      assert.deepEqual([...set], [inConnect ? `close ${code}` : 'http 401'], `${k}: ${[...set].join(', ')}`)
    }
    assert.ok(
      logs.every((l) => l.foreign === 0 && l.pubs.every((p) => p.pub === 'p0')),
      'nothing an intruder published reached anyone',
    )
    assertClean(report)
    for (const l of logs) assert.deepEqual(l.disconnects, [], `${l.client} was never disconnected`)
  })
})
