// The dashboard's live feed: only the admin identity may follow the stats channel, nobody may
// publish on it, the admin's tokens work in each auth setup (anonymous, HS secret, public key),
// and they do not change what other clients are allowed.
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { SignJWT, exportSPKI, generateKeyPair } from 'jose'
import WebSocket from 'ws'
import { HoldfastClient, HoldfastError, type PublicationEvent } from '@holdfast/client'
import { CloseCodes, createHoldfast, type Holdfast, type HoldfastOptions } from '@holdfast/server'
import { AdminDashboard, type NodeStats } from '../src/admin/index.js'
import { nodeStats } from '../src/admin/stats-publisher.js'
import { buildHttpApp } from '../src/http-app.js'
import { connectClient, within } from './helpers.js'

const SECRET = 'an-admin-secret-long-enough'
const JWT_SECRET = 'a-jwt-secret-of-at-least-32-characters!'

interface Node {
  holdfast: Holdfast
  admin: AdminDashboard
  wsUrl: string
}

async function start(t: TestContext, server: HoldfastOptions = {}, secret = SECRET): Promise<Node> {
  const admin = new AdminDashboard({ secret, statsIntervalMs: 100, failureDelayMs: 0, server: { logger: false, ...server } })
  const holdfast = createHoldfast(admin.serverOptions)
  const app = await buildHttpApp({ holdfast, logger: false, admin })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(async () => {
    await holdfast.close({ drainMs: 0 })
    await app.close()
  })
  const { port } = app.server.address() as { port: number }
  return { holdfast, admin, wsUrl: `ws://127.0.0.1:${port}/ws` }
}

/** A connected SDK client (closed after the test). */
async function open(t: TestContext, wsUrl: string, token?: string): Promise<HoldfastClient> {
  const client = new HoldfastClient(wsUrl, { WebSocket, ...(token === undefined ? {} : { token }) })
  t.after(() => client.close())
  const connected = new Promise<void>((resolve, reject) => {
    client.on('connected', () => resolve())
    client.on('state', (c) => c.to === 'closed' && reject(new Error(`closed: ${c.reason.code} ${c.reason.message}`)))
  })
  client.connect()
  await within(5000, 'connected', connected)
  return client
}

/** 'subscribed', or the code the server refused the subscription with. */
function subscribeOutcome(client: HoldfastClient, channel: string, onPub?: (p: PublicationEvent) => void): Promise<string> {
  const sub = client.subscribe(channel)
  // A refusal also comes as an `error` event; `unsubscribed` below carries it.
  sub.on('error', () => {})
  if (onPub !== undefined) sub.on('publication', onPub)
  return within(
    5000,
    `the subscribe reply for ${channel}`,
    new Promise<string>((resolve) => {
      sub.on('subscribed', () => resolve('subscribed'))
      sub.on('unsubscribed', ({ error }) => resolve(error?.code ?? 'unsubscribed'))
    }),
  )
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'accepted'
  } catch (err) {
    return err instanceof HoldfastError ? err.code : String(err)
  }
}

/** 'ok', or how the server refused the connect: the reply's error code or the close code's name. */
async function connectOutcome(wsUrl: string, token: string | undefined): Promise<string> {
  try {
    const c = await connectClient(wsUrl, token)
    c.ws.close()
    const err = c.reply.error as { code?: string } | undefined
    return err === undefined ? 'ok' : (err.code ?? 'error')
  } catch (err) {
    // The gateway refuses a bad token by closing with its code (4009 unauthorized, 4008 expired).
    const code = Number(/closed before the connect reply: (\d+)/.exec(String(err))?.[1])
    const name = Object.entries(CloseCodes).find(([, v]) => v.code === code)?.[0]
    if (name === undefined) throw err
    return name
  }
}

function payload(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>
}

describe('admin feed', () => {
  test('anonymous gateway: the admin capability follows the stats; nobody else can, nobody publishes there', async (t) => {
    const { holdfast, admin, wsUrl } = await start(t)
    const { identity } = admin
    assert.equal(identity.mode, 'capability')
    assert.match(identity.statsChannel, /^\$admin:stats#\$admin-[0-9a-f]{24}$/)

    const visitor = await open(t, wsUrl)
    assert.equal(await subscribeOutcome(visitor, 'chat:a'), 'subscribed')

    const adminClient = await open(t, wsUrl, await identity.mintToken())
    const stats: NodeStats[] = []
    assert.equal(await subscribeOutcome(adminClient, identity.statsChannel, (p) => stats.push(p.data as NodeStats)), 'subscribed')
    await within(5000, 'stats that count both connections', (async () => {
      while (!stats.some((s) => s.connections === 2)) await new Promise((r) => setTimeout(r, 20))
    })())
    const s = stats.find((x) => x.connections === 2) as NodeStats
    assert.equal(s.v, 1)
    assert.equal(s.node, holdfast.nodeId)
    assert.equal(s.subscriptions, 2)
    assert.ok(s.ready && !s.draining)
    assert.deepEqual(s.top, [['chat:a', 1]], 'the dashboard’s own channel is not listed')
    assert.equal(s.channels, 1)

    // The stats come from the nodes only: not even the admin may publish there.
    assert.equal(await refusal(adminClient.publish(identity.statsChannel, { v: 1, node: 'fake' })), 'permission_denied')

    // Everyone else: no subscribing, publishing or reading anywhere in `$admin:`.
    assert.equal(await subscribeOutcome(visitor, identity.statsChannel), 'permission_denied')
    assert.equal(await subscribeOutcome(visitor, '$admin:other'), 'permission_denied')
    assert.equal(await refusal(visitor.publish('$admin:other', 1)), 'permission_denied')
    assert.equal(await refusal(visitor.publish(identity.statsChannel, 1)), 'permission_denied')
    assert.equal(await refusal(visitor.history(identity.statsChannel)), 'permission_denied')
    // A publish elsewhere still works for both.
    assert.equal(await refusal(visitor.publish('chat:a', 'hi')), 'accepted')
  })

  test('anonymous gateway: forged, expired or foreign capabilities are refused; other tokens stay anonymous', async (t) => {
    const { admin, wsUrl } = await start(t)
    const good = await admin.identity.mintToken()
    assert.equal(await connectOutcome(wsUrl, good), 'ok')
    const [prefix, exp, nonce] = good.split('.') as [string, string, string, string]
    assert.equal(await connectOutcome(wsUrl, `${prefix}.${exp}.${nonce}.${'A'.repeat(43)}`), 'unauthorized', 'bad signature')
    assert.equal(await connectOutcome(wsUrl, `${prefix}.${Number(exp) + 3600}.${nonce}.${good.split('.')[3]}`), 'unauthorized', 'stretched expiry')
    assert.equal(await connectOutcome(wsUrl, `${prefix}.${exp}`), 'unauthorized', 'truncated')
    const expired = await admin.identity.mintToken(Date.now() - admin.identity.tokenTtlMs - 2000)
    assert.equal(await connectOutcome(wsUrl, expired), 'token_expired')
    const foreign = await new AdminDashboard({ secret: 'another-admin-secret-entirely', server: { logger: false } }).identity.mintToken()
    assert.equal(await connectOutcome(wsUrl, foreign), 'unauthorized', 'signed with another admin secret')

    // The anonymous gateway's behaviour for everyone else is unchanged: no token, or any other token.
    assert.equal(await connectOutcome(wsUrl, undefined), 'ok')
    const other = await open(t, wsUrl, 'some-token-the-gateway-ignores')
    assert.equal(await subscribeOutcome(other, admin.identity.statsChannel), 'permission_denied', 'and it is not the admin')
  })

  test('anonymous connections refused (allowAnonymous: false): only the admin capability connects', async (t) => {
    const { admin, wsUrl } = await start(t, { allowAnonymous: false })
    assert.equal(await connectOutcome(wsUrl, undefined), 'unauthorized')
    assert.equal(await connectOutcome(wsUrl, 'anything'), 'unauthorized')
    assert.equal(await connectOutcome(wsUrl, await admin.identity.mintToken()), 'ok')
  })

  test('HS secret: the admin gets an ordinary JWT (issuer and audience included); users cannot take the feed', async (t) => {
    const jwt = { secret: JWT_SECRET, issuer: 'https://issuer.example', audience: 'holdfast' }
    const { admin, wsUrl } = await start(t, { jwt })
    const { identity } = admin
    assert.equal(identity.mode, 'jwt')
    const token = await identity.mintToken()
    const claims = payload(token)
    assert.equal(claims['sub'], identity.user)
    assert.equal(claims['iss'], 'https://issuer.example')
    assert.equal(claims['aud'], 'holdfast')
    assert.ok(typeof claims['exp'] === 'number' && claims['exp'] * 1000 <= Date.now() + identity.tokenTtlMs + 1000)

    const adminClient = await open(t, wsUrl, token)
    assert.equal(await subscribeOutcome(adminClient, identity.statsChannel), 'subscribed')

    const sign = (sub: string): Promise<string> =>
      new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuer(jwt.issuer).setAudience(jwt.audience).setExpirationTime('5m').sign(new TextEncoder().encode(JWT_SECRET))
    const mallory = await open(t, wsUrl, await sign('mallory'))
    assert.equal(await subscribeOutcome(mallory, identity.statsChannel), 'permission_denied')
    const guesser = await open(t, wsUrl, await sign('$admin'))
    assert.equal(await subscribeOutcome(guesser, '$admin:stats#$admin'), 'permission_denied', 'a user named like the namespace is nobody special')
    // The capability path is not open when the gateway verifies JWTs with a secret we can sign with.
    const capability = await new AdminDashboard({ secret: SECRET, server: { logger: false } }).identity.mintToken()
    assert.equal(await connectOutcome(wsUrl, capability), 'unauthorized')
  })

  test('public-key JWTs: the admin capability works alongside, and user tokens are still verified', async (t) => {
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const { admin, wsUrl } = await start(t, { jwt: { publicKey: await exportSPKI(publicKey) } })
    assert.equal(admin.identity.mode, 'capability')
    const adminClient = await open(t, wsUrl, await admin.identity.mintToken())
    assert.equal(await subscribeOutcome(adminClient, admin.identity.statsChannel), 'subscribed')

    const alice = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('alice').setExpirationTime('5m').sign(privateKey)
    const client = await open(t, wsUrl, alice)
    assert.equal(await subscribeOutcome(client, admin.identity.statsChannel), 'permission_denied')
    assert.equal(await connectOutcome(wsUrl, undefined), 'unauthorized', 'still no anonymous clients')
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('5m').sign(new TextEncoder().encode('x'))
    assert.equal(await connectOutcome(wsUrl, forged), 'unauthorized')
  })

  test('node stats: rates over the measured period, from the traffic counters', async (t) => {
    const { holdfast } = await start(t)
    const before = { at: 1000, messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
    const after = { at: 1500, messagesIn: 50, messagesOut: 200, bytesIn: 5000, bytesOut: 1 }
    const s = nodeStats(holdfast, before, after)
    assert.equal(s.periodMs, 500)
    assert.equal(s.messagesInPerSec, 100)
    assert.equal(s.messagesOutPerSec, 400)
    assert.equal(s.bytesInPerSec, 10_000)
    assert.equal(s.bytesOutPerSec, 2)
    assert.equal(nodeStats(holdfast, after, after).messagesInPerSec, 0, 'no period, no rate (no division by zero)')
  })
})
