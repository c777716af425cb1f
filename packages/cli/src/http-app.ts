import { readFile } from 'node:fs/promises'
import { extname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify'
import type { Logger } from 'pino'
import type { Holdfast } from '@holdfast/server'
import { holdfastApi } from '@holdfast/server/api'
import { holdfastDiscovery, holdfastFastify } from '@holdfast/server/fastify'
import { adminRoutes, type AdminDashboard } from './admin/index.js'

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
}

/** Resolved from this file so that it works from src/ (tsx) and from dist/ alike. */
export const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url))

const PROBES = new Set(['/healthz', '/readyz', '/metrics'])

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
}

/**
 * The HTTP side of `holdfast serve`: health and readiness probes, the demo page, and the gateway
 * at /ws. Built separately from listen() so tests can use `app.inject()` without a port.
 */
export async function buildHttpApp(opts: HttpAppOptions): Promise<FastifyInstance> {
  const { holdfast } = opts
  const publicDir = resolve(opts.publicDir ?? DEFAULT_PUBLIC_DIR)
  // Typed as Fastify's base logger so the app is a plain FastifyInstance for callers.
  const loggerInstance: FastifyBaseLogger | undefined = opts.logger === false ? undefined : opts.logger
  const app = Fastify({
    ...(loggerInstance === undefined ? { logger: false } : { loggerInstance }),
    // Probes hit /healthz and /readyz every few seconds; a log line each would bury the useful ones.
    logController: new LogController({ disableRequestLogging: (req) => PROBES.has(req.url) }),
  })

  // Liveness: the event loop answers. Deliberately independent of the engine, so that an
  // orchestrator does not restart a node just because Redis is briefly away.
  app.get('/healthz', async () => ({ status: 'ok' }))

  // Readiness: 503 while draining (so load balancers stop sending new clients here before the
  // connections are closed) and while the engine is down.
  app.get('/readyz', async (_req, reply) => {
    if (holdfast.isReady()) return { status: 'ready' }
    return reply.code(503).send({ status: holdfast.draining ? 'draining' : 'not_ready' })
  })

  // Prometheus scrape (docs/metrics.md). Node-internal counts, not secrets, but keep it off the
  // public internet: expose the port to the scraper only (docs/operations.md).
  app.get('/metrics', async (_req, reply) => reply.header('content-type', holdfast.metrics.contentType).send(await holdfast.metricsText()))

  if (opts.webSocket !== false) await app.register(holdfastFastify, { holdfast, path: opts.wsPath ?? '/ws' })
  await app.register(holdfastDiscovery, { holdfast })
  if (opts.apiKey !== undefined) await app.register(holdfastApi, { holdfast, apiKey: opts.apiKey, prefix: '/api' })
  await app.register(adminRoutes, { holdfast, admin: opts.admin, wsPath: opts.wsPath ?? '/ws' })

  const sendFile = async (rel: string, reply: FastifyReply): Promise<unknown> => {
    const full = resolve(join(publicDir, rel))
    // Path traversal guard: `/..%2f..%2fetc/passwd` must not leave the public folder.
    if (full !== publicDir && !full.startsWith(publicDir + sep)) return reply.code(404).send({ error: 'not found' })
    // The dashboard's files are served by adminRoutes only, behind its login (`/%61dmin/...` lands here).
    if (full.startsWith(join(publicDir, 'admin') + sep)) return reply.code(404).send({ error: 'not found' })
    let body: Buffer
    try {
      body = await readFile(full)
    } catch {
      return reply.code(404).send({ error: 'not found' })
    }
    return reply
      .header('content-type', CONTENT_TYPES[extname(full)] ?? 'application/octet-stream')
      .header('x-content-type-options', 'nosniff')
      // The demo is rebuilt in place; a stale cached bundle would talk an old protocol.
      .header('cache-control', 'no-cache')
      .send(body)
  }
  app.get('/', (_req, reply) => sendFile('index.html', reply))
  app.get<{ Params: { '*': string } }>('/*', (req, reply) => sendFile(req.params['*'], reply))

  return app
}
