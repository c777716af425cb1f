import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyHelmet from '@fastify/helmet'
import fastifyStatic from '@fastify/static'
import type { Logger } from 'pino'
import type { Holdfast } from '@holdfast/server'
import { holdfastApi } from '@holdfast/server/api'
import { holdfastDiscovery, holdfastFastify } from '@holdfast/server/fastify'
import { guardHttpServer, httpServerOptions, type HttpGuardOptions } from '@holdfast/server/internal'
import { adminRoutes, type AdminDashboard } from './admin/index.js'
import type { MetricsAuth } from './config.js'
import { metricsAnswerer } from './metrics-endpoint.js'
import { redactingSerializers } from './redact.js'
import { HELMET_OPTIONS } from './security-headers.js'

export type { Holdfast }

export interface HttpAppOptions {
  holdfast: Holdfast
  /** pino logger shared with the gateway; false for none. */
  logger: Logger | false
  /** Folder served at `/` (the demo page). @default packages/cli/public */
  publicDir?: string
  /** WebSocket endpoint. @default '/ws' */
  wsPath?: string
  /** Serve the gateway's WebSockets on this app's server; false when uWebSockets.js serves them on a port of its own. @default true */
  webSocket?: boolean
  /** Key of the server HTTP API at `/api`; without one the API is not served at all. @default undefined */
  apiKey?: string
  /** The admin dashboard at `/admin` (src/admin); without one every `/admin` URL is 404. @default undefined */
  admin?: AdminDashboard
  /**
   * `/metrics` on this app: `'none'` open to anyone who reaches the port, `'apikey'` only with the
   * API key, `false` not here (served by `--metrics-port`'s listener). @default 'none'
   */
  metrics?: MetricsAuth | false
  /** Timeouts and the per-address connection cap of the HTTP server. @default HTTP_GUARD_DEFAULTS */
  http?: HttpGuardOptions
  /** Serve `*.map` files (the bundles' source maps). serve turns this off with NODE_ENV=production. @default true */
  sourceMaps?: boolean
}

/** Resolved from this file so that it works from src/ (tsx) and from dist/ alike. */
export const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url))

const PROBES = new Set(['/healthz', '/readyz', '/metrics'])
const JSON_TYPE = 'application/json; charset=utf-8'

/** The error shape of the server API (docs/api.md), for every error this app answers itself. */
function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } }
}

function pathOf(url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/**
 * The files @fastify/static may send: nothing of the dashboard (its files are served by
 * adminRoutes only, behind the login), no source map when they are off, and nothing reached
 * through a symbolic link (a link left in public/ must not publish what it points to).
 */
function staticFilter(publicDir: string, sourceMaps: boolean): (pathName: string) => boolean {
  let realRoot: string | undefined
  return (pathName) => {
    let rel: string
    try {
      rel = decodeURIComponent(pathName)
    } catch {
      return false
    }
    rel = rel.replace(/^\/+/, '')
    if (rel === 'admin' || rel.startsWith('admin/')) return false
    if (!sourceMaps && rel.endsWith('.map')) return false
    const full = resolve(publicDir, rel === '' ? 'index.html' : rel)
    try {
      realRoot ??= realpathSync.native(publicDir)
      // Compared with the path the URL names: any link on the way makes them differ.
      return realpathSync.native(full) === join(realRoot, full.slice(publicDir.length))
    } catch {
      return true // missing: @fastify/static answers 404
    }
  }
}

/**
 * One log line per request, after the answer. Fastify's own two lines per request are off: they
 * log the full URL (a connection token in `/ws?token=…`), and every static file at info. Here the
 * URL goes through the redacting serializer, and probes and page assets log at debug.
 */
function logRequest(req: FastifyRequest, reply: FastifyReply): void {
  const path = pathOf(req.url)
  const quiet = reply.statusCode < 400 && (req.method === 'GET' || req.method === 'HEAD') && !path.startsWith('/api/') && !path.startsWith('/admin/api/')
  const level = quiet || PROBES.has(path) ? 'debug' : 'info'
  req.log[level]({ req, res: { statusCode: reply.statusCode }, responseTime: Math.round(reply.elapsedTime * 100) / 100 }, 'request')
}

/**
 * The HTTP side of `holdfast serve`: health and readiness probes, metrics, the server API, the
 * dashboard, the demo page, and the gateway at /ws. Built separately from listen() so tests can use
 * `app.inject()` without a port.
 */
export async function buildHttpApp(opts: HttpAppOptions): Promise<FastifyInstance> {
  const { holdfast } = opts
  const publicDir = resolve(opts.publicDir ?? DEFAULT_PUBLIC_DIR)
  const wsPath = opts.wsPath ?? '/ws'
  // A child with serializers that drop secrets: Fastify takes a logger's own serializers over its defaults.
  const loggerInstance: FastifyBaseLogger | undefined = opts.logger === false ? undefined : opts.logger.child({}, { serializers: redactingSerializers })
  const app = Fastify({
    ...(loggerInstance === undefined ? { logger: false } : { loggerInstance }),
    logController: new LogController({ disableRequestLogging: true }),
    // The HTTP server with the timeouts and the per-address cap (before any HTTP is parsed).
    serverFactory: (handler) => {
      const server = createServer(httpServerOptions(opts.http), handler)
      guardHttpServer(server, {
        ...opts.http,
        onRefused: (ip) => {
          holdfast.counters.inc('connections_rejected', 'tcp_per_ip')
          loggerInstance?.warn({ ip }, 'connection refused: too many open connections from this address')
        },
      })
      return server
    },
  })
  app.addHook('onResponse', async (req, reply) => logRequest(req, reply))
  // Security headers on every answer (CSP, nosniff, no framing): see security-headers.ts.
  await app.register(fastifyHelmet, HELMET_OPTIONS)

  // Liveness: the event loop answers. Deliberately independent of the engine, so that an
  // orchestrator does not restart a node just because Redis is briefly away.
  app.get('/healthz', async () => ({ status: 'ok' }))

  // Readiness: 503 while draining (so load balancers stop sending new clients here before the
  // connections are closed) and while the engine is down.
  app.get('/readyz', async (_req, reply) => {
    if (holdfast.isReady()) return { status: 'ready' }
    return reply.code(503).send({ status: holdfast.draining ? 'draining' : 'not_ready' })
  })

  // Prometheus scrape (docs/metrics.md): open, behind the API key, or only on --metrics-port.
  if (opts.metrics !== false) {
    const answer = metricsAnswerer(holdfast, opts.metrics ?? 'none', opts.apiKey)
    app.get('/metrics', async (req, reply) => {
      const a = await answer(req.headers.authorization)
      return reply.code(a.status).headers(a.headers).send(a.body)
    })
  }

  if (opts.webSocket !== false) await app.register(holdfastFastify, { holdfast, path: wsPath })
  await app.register(holdfastDiscovery, { holdfast })
  // A plain GET of the WebSocket URL (a browser tab, curl): say what the endpoint wants.
  app.get(wsPath, async (_req, reply) =>
    reply
      .code(426)
      .header('upgrade', 'websocket')
      .header('connection', 'Upgrade')
      .send(errorBody('bad_request', `${wsPath} is the WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)`)),
  )

  if (opts.apiKey !== undefined) {
    await app.register(holdfastApi, { holdfast, apiKey: opts.apiKey, prefix: '/api' })
    // The methods are POSTs; a GET of one (a browser, a mistyped curl) learns which method to use.
    // GET /api/info and /api/openapi.json are routes of the plugin and win over this one.
    app.get('/api/*', async (req, reply) =>
      reply
        .code(405)
        .header('allow', 'POST')
        .send(errorBody('bad_request', `server API methods are called with POST: POST ${pathOf(req.url).slice(0, 80)}`)),
    )
  } else {
    app.all('/api/*', async (_req, reply) => reply.code(404).send(errorBody('method_not_found', 'the server API is off: start serve with --api-key')))
  }
  await app.register(adminRoutes, { holdfast, admin: opts.admin, wsPath, sourceMaps: opts.sourceMaps !== false })

  await app.register(fastifyStatic, {
    root: publicDir,
    prefix: '/',
    index: 'index.html',
    // ETag and Last-Modified come with @fastify/send; no-cache makes the browser revalidate each
    // time (a 304 when unchanged): the demo is rebuilt in place, and a stale bundle would talk an
    // old protocol.
    cacheControl: false,
    setHeaders: (res) => res.setHeader('cache-control', 'no-cache'),
    dotfiles: 'ignore',
    allowedPath: staticFilter(publicDir, opts.sourceMaps !== false),
  })

  app.setNotFoundHandler((req, reply) => reply.code(404).type(JSON_TYPE).send(errorBody('not_found', `nothing at ${req.method} ${pathOf(req.url).slice(0, 100)}`)))
  return app
}
