import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyCookie from '@fastify/cookie'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { HoldfastError, type Holdfast } from '@holdfast/server'
import { HTTP_STATUS } from '@holdfast/server/api'
import type { AdminDashboard } from './dashboard.js'
import { CSRF_HEADER, CSRF_VALUE, type AdminErrorBody, type NodesResponse, type TokenResponse } from './feed.js'
import { SESSION_COOKIE, sessionCookieOptions, type Session } from './session-cookie.js'
import { StatsPublisher } from './stats-publisher.js'

export interface AdminRoutesOptions {
  holdfast: Holdfast
  /** The dashboard; without one every `/admin` URL answers 404, so there is never an open dashboard. */
  admin: AdminDashboard | undefined
  /** WebSocket path the page connects to. @default '/ws' */
  wsPath?: string
  /** Folder with the page's files (login.html, index.html, admin.css, admin.js). @default packages/cli/public/admin */
  dir?: string
  /** Serve admin.js.map (to logged-in admins). serve turns it off with NODE_ENV=production. @default true */
  sourceMaps?: boolean
}

/** Resolved from this file, so that it works from src/ (tsx) and from dist/ alike. */
export const DEFAULT_ADMIN_DIR = fileURLToPath(new URL('../../public/admin/', import.meta.url))

/** Pages and assets of the dashboard, by URL. Only the login page and its stylesheet are served without a session. */
const FILES = {
  login: { file: 'login.html', type: 'text/html; charset=utf-8' },
  dashboard: { file: 'index.html', type: 'text/html; charset=utf-8' },
  css: { file: 'admin.css', type: 'text/css; charset=utf-8' },
  chartCss: { file: 'uplot.css', type: 'text/css; charset=utf-8' },
  js: { file: 'admin.js', type: 'text/javascript; charset=utf-8' },
  map: { file: 'admin.js.map', type: 'application/json; charset=utf-8' },
} as const

/** Fixed texts only: nothing from the request is ever written into the page. */
const LOGIN_ERRORS = {
  wrong: 'Wrong secret.',
  limited: 'Too many attempts: wait a minute and try again.',
  crossSite: 'Refused: the login form must be posted from this server’s own page.',
} as const
const LOGIN_ERROR_MARK = '<!--login-error-->'

// Unknown fields fail with `{ not: {} }`: with `additionalProperties: false` Fastify's ajv
// (`removeAdditional: true`) would drop them silently, and `{ user, code }` would kick with
// another code than the caller asked for. Channel rules are the gateway's (unknown_channel).
const CLOSED = { not: {} } as const
const CHANNEL = { type: 'string', minLength: 1, maxLength: 255 } as const
// Never empty: '' is every anonymous user at once.
const ID = { type: 'string', minLength: 1, maxLength: 255 } as const
const SCHEMAS = {
  presence: { type: 'object', required: ['channel'], additionalProperties: CLOSED, properties: { channel: CHANNEL } },
  publish: { type: 'object', required: ['channel', 'data'], additionalProperties: CLOSED, properties: { channel: CHANNEL, data: {} } },
  disconnect: {
    type: 'object',
    additionalProperties: CLOSED,
    minProperties: 1,
    properties: { user: ID, client: ID },
  },
} as const

function errorBody(code: string, message: string): AdminErrorBody {
  return { error: { code, message } }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Fetch metadata says a browser sent this from another site's page: refuse whatever it carries. */
function crossSite(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site']
  return typeof site === 'string' && site !== 'same-origin' && site !== 'none'
}

/** Secure cookies only where they will come back: over HTTPS, directly or behind a TLS proxy. */
function overHttps(req: FastifyRequest): boolean {
  return req.protocol === 'https' || req.headers['x-forwarded-proto'] === 'https'
}

/**
 * The admin dashboard at `/admin`: a login form, the page, its live-feed token and a few actions
 * (publish, disconnect, presence, nodes) under `/admin/api`, and the stats publisher of this node.
 *
 * Encapsulated (no skip-override): its form parser, hooks and error handler apply to `/admin` only.
 * Access rules: `GET /admin` shows the login form until logged in; `POST /admin/login` and
 * `/admin/logout`, and `GET /admin/admin.css`, are open; everything else needs the session
 * cookie, and `/admin/api/*` also the `x-holdfast-admin: 1` header and, when the browser sends
 * it, `Sec-Fetch-Site: same-origin`.
 */
export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app: FastifyInstance, opts) => {
  const { holdfast, admin } = opts
  const notFound = (_req: FastifyRequest, reply: FastifyReply): FastifyReply => reply.code(404).send({ error: 'not found' })
  if (admin === undefined) {
    // Not even the static files: without a secret nothing under /admin exists. Answered on
    // request, before any body is parsed, so that no input shape tells a prober otherwise.
    app.addHook('onRequest', async (req, reply) => notFound(req, reply))
    app.all('/admin', notFound)
    app.all('/admin/*', notFound)
    return
  }
  const dir = opts.dir ?? DEFAULT_ADMIN_DIR
  const wsPath = opts.wsPath ?? '/ws'
  const { identity, sessions, limiter, secretCheck } = admin
  for (const w of admin.warnings) app.log.warn(w)

  const publisher = new StatsPublisher({
    holdfast,
    channel: identity.statsChannel,
    intervalMs: admin.statsIntervalMs,
    onError: (err) => app.log.debug({ err }, 'admin stats publish failed'),
  })
  app.addHook('onClose', async () => publisher.stop())

  // Cookie parsing and Set-Cookie for /admin only (this plugin is encapsulated).
  await app.register(fastifyCookie)

  // A login form posts urlencoded; a small limit, as it carries one field.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })

  // Nothing under /admin may be cached: a shared cache would hand a page or a token to the next
  // user. Framing, sniffing and the CSP are the app-wide security headers (security-headers.ts).
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('cache-control', 'no-store')
    return payload
  })

  app.setErrorHandler((err: unknown, req, reply) => {
    if (err instanceof HoldfastError) return reply.code(HTTP_STATUS[err.code]).send(errorBody(err.code, err.message))
    const e = err as { validation?: Array<{ keyword: string; instancePath: string }>; statusCode?: number; message?: string }
    if (e.validation !== undefined) {
      const unknown = e.validation.find((v) => v.keyword === 'not')
      const message = unknown === undefined ? (e.message ?? 'invalid request') : `unknown field ${unknown.instancePath.slice(1) || '(root)'}`
      return reply.code(400).send(errorBody('bad_request', message))
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.code(e.statusCode).send(errorBody('bad_request', e.message ?? 'bad request'))
    }
    req.log.error({ err }, 'admin request failed')
    return reply.code(500).send(errorBody('internal', 'internal error'))
  })

  const sessionOf = (req: FastifyRequest): Session | undefined => sessions.verify(req.cookies[SESSION_COOKIE])

  const sendFile = async (reply: FastifyReply, which: keyof typeof FILES, transform?: (text: string) => string): Promise<FastifyReply> => {
    const f = FILES[which]
    let body: Buffer | string
    try {
      body = await readFile(join(dir, f.file))
    } catch {
      // The bundle is built (npm run build); the HTML is committed.
      return reply.code(404).send({ error: which === 'js' ? 'admin.js is not built: run npm run build' : 'not found' })
    }
    if (transform !== undefined) body = transform(body.toString('utf8'))
    return reply.header('content-type', f.type).send(body)
  }

  const loginPage = (reply: FastifyReply, status: number, error?: keyof typeof LOGIN_ERRORS): Promise<FastifyReply> =>
    sendFile(reply.code(status), 'login', (html) =>
      error === undefined ? html : html.replace(LOGIN_ERROR_MARK, `<p class="error" role="alert" data-testid="login-error">${LOGIN_ERRORS[error]}</p>`),
    )

  app.get('/admin', (req, reply) => (sessionOf(req) === undefined ? loginPage(reply, 200) : sendFile(reply, 'dashboard')))
  // One URL for the page: relative links and bookmarks of /admin/ land on it too.
  app.get('/admin/', (_req, reply) => reply.code(308).header('location', '/admin').send())
  app.get('/admin/admin.css', (_req, reply) => sendFile(reply, 'css'))

  app.post<{ Body: unknown }>('/admin/login', async (req, reply) => {
    if (crossSite(req)) return loginPage(reply, 403, 'crossSite')
    const now = Date.now()
    if (!limiter.take(req.ip, now)) {
      req.log.warn({ ip: req.ip }, 'admin login refused: too many attempts')
      reply.header('retry-after', String(limiter.retryAfterSec(req.ip, now)))
      return loginPage(reply, 429, 'limited')
    }
    const body = req.body
    const given = typeof body === 'object' && body !== null && typeof (body as Record<string, unknown>)['secret'] === 'string' ? ((body as Record<string, unknown>)['secret'] as string) : ''
    if (!secretCheck.matches(given)) {
      req.log.warn({ ip: req.ip }, 'admin login failed: wrong secret')
      // Each wrong guess costs the guesser a second on top of the per-address limit.
      await sleep(admin.failureDelayMs)
      return loginPage(reply, 401, 'wrong')
    }
    limiter.giveBack(req.ip, Date.now())
    const { session, value } = sessions.issue()
    req.log.info({ ip: req.ip }, 'admin logged in')
    reply.setCookie(SESSION_COOKIE, value, sessionCookieOptions(Math.floor((session.expiresAt - Date.now()) / 1000), overHttps(req)))
    // 303: the browser follows with a GET, so a reload does not post the secret again.
    return reply.code(303).header('location', '/admin').send()
  })

  app.post('/admin/logout', async (req, reply) => {
    if (crossSite(req)) return reply.code(403).send(errorBody('forbidden', 'cross-site request refused'))
    const session = sessionOf(req)
    if (session !== undefined) sessions.revoke(session)
    reply.setCookie(SESSION_COOKIE, '', sessionCookieOptions(0, overHttps(req)))
    return reply.code(303).header('location', '/admin').send()
  })

  // Hooks that answer return the reply: that is what stops Fastify's chain in an async hook.
  const requirePage = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (sessionOf(req) === undefined) return reply.code(401).send(errorBody('unauthorized', 'log in at /admin first'))
    return undefined
  }
  app.get('/admin/admin.js', { onRequest: requirePage }, (_req, reply) => sendFile(reply, 'js'))
  app.get('/admin/uplot.css', { onRequest: requirePage }, (_req, reply) => sendFile(reply, 'chartCss'))
  if (opts.sourceMaps !== false) app.get('/admin/admin.js.map', { onRequest: requirePage }, (_req, reply) => sendFile(reply, 'map'))

  // The actions: cookie, plus a header that a cross-site form, link or image cannot send (a
  // script on another site could only send it after a CORS preflight that this server never grants).
  // Checked on request, before the body is parsed or validated: a stranger learns nothing from 400s.
  const requireApi = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (sessionOf(req) === undefined) return reply.code(401).send(errorBody('unauthorized', 'log in at /admin first'))
    if (req.headers[CSRF_HEADER] !== CSRF_VALUE || crossSite(req)) {
      return reply.code(403).send(errorBody('forbidden', `cross-site request refused: send ${CSRF_HEADER}: ${CSRF_VALUE} from the dashboard page`))
    }
    return undefined
  }

  app.post('/admin/api/token', { onRequest: requireApi }, async (): Promise<TokenResponse> => {
    const token = await identity.mintToken()
    return { token, channel: identity.statsChannel, wsPath, expiresInMs: identity.tokenTtlMs }
  })

  app.get('/admin/api/nodes', { onRequest: requireApi }, async (): Promise<NodesResponse> => {
    const nodes = await holdfast.nodes()
    return { self: holdfast.nodeId, nodes: nodes.map((n) => ({ id: n.id, connections: n.connections, subscriptions: n.subscriptions, channels: n.channels, startedAt: n.startedAt, updatedAt: n.updatedAt })) }
  })

  app.post<{ Body: { channel: string } }>('/admin/api/presence', { onRequest: requireApi, schema: { body: SCHEMAS.presence } }, async (req) => {
    const clients = Object.values(await holdfast.presence(req.body.channel))
    clients.sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : a.client < b.client ? -1 : 1))
    return { channel: req.body.channel, clients }
  })

  app.post<{ Body: { channel: string; data: unknown } }>('/admin/api/publish', { onRequest: requireApi, schema: { body: SCHEMAS.publish }, bodyLimit: 1_048_576 }, async (req) => {
    const out = await holdfast.publish(req.body.channel, req.body.data)
    // An audit line: who did what, never the payload (LOG rules in the gateway).
    req.log.info({ channel: req.body.channel, offset: out.offset }, 'admin published')
    return { channel: req.body.channel, offset: out.offset, epoch: out.epoch }
  })

  app.post<{ Body: { user?: string; client?: string } }>('/admin/api/disconnect', { onRequest: requireApi, schema: { body: SCHEMAS.disconnect } }, async (req) => {
    const { user, client } = req.body
    await holdfast.disconnect({
      ...(user === undefined ? {} : { user }),
      ...(client === undefined ? {} : { client }),
      code: 'kicked',
      reason: 'disconnected from the admin dashboard',
    })
    req.log.info({ user, client }, 'admin disconnected')
    return { ok: true }
  })

  // Anything else: say "log in" to strangers, "no such thing" only to the logged in.
  app.all('/admin/*', (req, reply) =>
    sessionOf(req) === undefined ? reply.code(401).send(errorBody('unauthorized', 'log in at /admin first')) : notFound(req, reply),
  )
}
