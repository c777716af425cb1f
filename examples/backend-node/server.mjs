// An application backend for `holdfast serve --proxy-url ... --webhook-url ...`, on Fastify.
// The same rules as examples/backend-python: cookie login, team channels, moderation, two RPCs,
// and a webhook receiver that checks signatures and drops duplicates (docs/proxy.md).
//
//   node server.mjs --port 9000 --webhook-secret <same as holdfast's --webhook-secret>
import { createHmac, timingSafeEqual } from 'node:crypto'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'

const APP_SECRET = 'example-app-cookie-secret'
const TEAMS = { blue: new Set(['alice', 'bob']), red: new Set(['carol']) }
const BAD_WORD = 'darn'
// Error codes from holdfast's table (docs/protocol.md).
const UNAUTHORIZED = 101
const PERMISSION_DENIED = 103
const METHOD_NOT_FOUND = 104
const BAD_REQUEST = 107
const SESSION_LIFETIME_S = 3600

const mac = (user) => createHmac('sha256', APP_SECRET).update(user).digest('hex')
const result = (value) => ({ result: value })
const error = (code, message) => ({ error: { code, message } })

/** The user of a valid `session` cookie in a Cookie header, or undefined. */
function userFromCookie(header = '') {
  for (const part of header.split(';')) {
    const [name, value = ''] = part.trim().split('=')
    if (name !== 'session') continue
    const dot = value.lastIndexOf('.')
    const user = value.slice(0, dot)
    const got = Buffer.from(value.slice(dot + 1))
    const want = Buffer.from(mac(user))
    if (user !== '' && got.length === want.length && timingSafeEqual(got, want)) return user
  }
  return undefined
}

/** X-Holdfast-Signature is v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">. */
function verifyWebhook(secret, timestamp, signature, rawBody) {
  if (!(Math.abs(Date.now() / 1000 - Number(timestamp)) <= 300) || typeof signature !== 'string') return false
  const want = Buffer.from(`v1=${createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`)
  const got = Buffer.from(signature)
  return got.length === want.length && timingSafeEqual(got, want)
}

const events = {
  connect(req) {
    const user = userFromCookie(req.headers.cookie)
    if (user === undefined) return error(UNAUTHORIZED, 'log in first')
    return result({ user, info: { name: user[0].toUpperCase() + user.slice(1) }, expireAt: Math.floor(Date.now() / 1000) + SESSION_LIFETIME_S })
  },
  refresh: () => result({ expireAt: Math.floor(Date.now() / 1000) + SESSION_LIFETIME_S }),
  subscribe({ channel, user }) {
    if (channel === 'news') return result({})
    if (channel.startsWith('team:')) {
      const team = channel.slice('team:'.length)
      if (TEAMS[team]?.has(user)) return result({ info: { team }, presence: true })
    }
    return error(PERMISSION_DENIED, `${user} may not join ${channel}`)
  },
  publish({ data }) {
    const text = typeof data?.text === 'string' ? data.text : ''
    if (text.includes('spam')) return error(PERMISSION_DENIED, 'refused by moderation')
    if (text.includes(BAD_WORD)) return result({ data: { ...data, text: text.replaceAll(BAD_WORD, 'd**n'), moderated: true } })
    return result({})
  },
  rpc({ method, data, user, client }) {
    if (method === 'add') {
      if (typeof data?.a !== 'number' || typeof data?.b !== 'number') return error(BAD_REQUEST, 'add takes {a, b}')
      return result({ data: { sum: data.a + data.b } })
    }
    if (method === 'whoami') return result({ data: { user, client } })
    return error(METHOD_NOT_FOUND, `no method ${method}`)
  },
}

export function buildApp({ webhookSecret = '' } = {}) {
  const app = Fastify()
  const received = []
  const seen = new Set()
  // Webhook signatures cover the raw body: keep it as a string for that route.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    try {
      req.rawBody = body
      done(null, body === '' ? {} : JSON.parse(body))
    } catch (err) {
      done(err)
    }
  })
  app.post('/login', async (req, reply) => {
    const user = String(req.body?.user ?? '')
    if (!/^[a-z0-9]+$/i.test(user)) return reply.code(400).send({ error: 'user must be alphanumeric' })
    return reply.header('set-cookie', `session=${user}.${mac(user)}; HttpOnly; Path=/`).send({ user })
  })
  app.post('/holdfast/:event', async (req, reply) => {
    const handler = events[req.params.event]
    if (handler === undefined) return reply.code(404).send({ error: 'unknown event' })
    return handler(req.body)
  })
  app.post('/webhooks', async (req, reply) => {
    if (!verifyWebhook(webhookSecret, req.headers['x-holdfast-timestamp'], req.headers['x-holdfast-signature'], req.rawBody)) {
      return reply.code(401).send({ error: 'bad signature' })
    }
    // At least once: a retried delivery carries the same id.
    if (!seen.has(req.body.id)) {
      seen.add(req.body.id)
      received.push(req.body)
    }
    return {}
  })
  app.get('/webhooks/received', async () => received)
  return app
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '9000' }, 'webhook-secret': { type: 'string', default: '' } } })
  const app = buildApp({ webhookSecret: values['webhook-secret'] })
  const address = await app.listen({ host: values.host, port: Number(values.port) })
  console.log(`backend listening on ${address}`)
}
