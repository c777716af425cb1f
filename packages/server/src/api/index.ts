import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { HoldfastError } from '@holdfast/protocol'
import type { Holdfast } from '../holdfast.js'
import { createApiKeyCheck } from './auth.js'
import { toApiError, type ApiErrorResponse } from './errors.js'
import { METHODS, info } from './methods.js'
import { buildOpenApi, type DocumentedRoute, type RouteSchema } from './openapi.js'
import { errorResponse, infoResult, type JsonSchema } from './schemas.js'

export { HTTP_STATUS, type ApiErrorBody } from './errors.js'
export { createApiKeyCheck, type ApiKeyVerdict } from './auth.js'

export interface HoldfastApiOptions {
  /** The gateway to control (from `createHoldfast`). */
  holdfast: Holdfast
  /**
   * The key callers send as `Authorization: apikey <key>`. Required: without it the plugin
   * refuses to register, so an unauthenticated control API is never served by accident.
   */
  apiKey: string
}

/** Version of this HTTP API (the OpenAPI `info.version`); bumped on incompatible changes. */
export const API_VERSION = '1.0.0'

/** Statuses every POST method can answer with, whatever it does. */
const COMMON_ERRORS = [400, 401, 413, 415, 500] as const

/** Marks the one route served without the key (the OpenAPI document). */
interface RouteConfig {
  holdfastApiPublic?: boolean
}

function responses(ok: JsonSchema, errors: readonly number[]): Record<number, JsonSchema> {
  const out: Record<number, JsonSchema> = { 200: ok }
  for (const status of [...errors].sort((a, b) => a - b)) out[status] = errorResponse
  return out
}

function sendError(reply: FastifyReply, out: ApiErrorResponse): FastifyReply {
  if (out.retryAfter !== undefined) reply.header('retry-after', String(out.retryAfter))
  if (out.status === 401) reply.header('www-authenticate', 'apikey')
  return reply.code(out.status).send(out.body)
}

/**
 * The server HTTP API as a Fastify plugin: `POST <prefix>/<method>` for publish, broadcast,
 * disconnect, subscribe, unsubscribe, presence, presence_stats, history, channels, info and send;
 * `GET <prefix>/info`; and `GET <prefix>/openapi.json` (the one route without the key).
 *
 * ```ts
 * await app.register(holdfastApi, { holdfast, apiKey: process.env.HOLDFAST_API_KEY, prefix: '/api' })
 * ```
 *
 * Encapsulated on purpose (no skip-override): its auth hook and error handler apply to its own
 * routes only, never to the host application's.
 */
const plugin: FastifyPluginAsync<HoldfastApiOptions> = async (app: FastifyInstance, opts) => {
  const holdfast = opts.holdfast
  if (holdfast === undefined || typeof holdfast.publish !== 'function') {
    throw new TypeError('holdfast api: the "holdfast" option is required (from createHoldfast)')
  }
  const checkKey = createApiKeyCheck(opts.apiKey)

  const routes: Array<DocumentedRoute & { run(req: FastifyRequest): Promise<unknown> }> = []
  for (const m of METHODS) {
    const schema: RouteSchema = {
      body: m.body,
      ...(m.headers === undefined ? {} : { headers: m.headers }),
      response: responses(m.response, [...COMMON_ERRORS, ...m.errors]),
    }
    routes.push({
      method: 'POST',
      path: `${app.prefix}/${m.name}`,
      operationId: m.name,
      summary: m.summary,
      description: m.description,
      public: false,
      schema,
      run: (req) => m.run(holdfast, { body: req.body, headers: req.headers, log: req.log }),
    })
  }
  // The issue for Redis scale-out asks for `GET /api/info`: the same answer as POST, for browsers and curl.
  routes.push({
    method: 'GET',
    path: `${app.prefix}/info`,
    operationId: 'info_get',
    summary: 'Nodes of the fleet and their counts (GET)',
    description: 'Same as `POST info`.',
    public: false,
    schema: { response: responses(infoResult, [401, 500]) },
    run: () => info(holdfast),
  })
  routes.push({
    method: 'GET',
    path: `${app.prefix}/openapi.json`,
    operationId: 'openapi',
    summary: 'This OpenAPI 3.1 document',
    description: 'Served without the API key: it describes the API, it does not use it.',
    public: true,
    schema: {},
    run: async () => document,
  })
  const document = buildOpenApi(routes, { version: API_VERSION })

  app.setErrorHandler((err, req, reply) => {
    const out = toApiError(err)
    if (out.internal) req.log.error({ err }, 'server API request failed')
    return sendError(reply, out)
  })

  app.addHook('onRequest', async (req, reply) => {
    if ((req.routeOptions.config as RouteConfig).holdfastApiPublic === true) return
    const verdict = checkKey(req.headers.authorization)
    if (verdict === 'ok') return
    const message = verdict === 'missing' ? 'an Authorization: apikey <key> header is required' : 'invalid API key'
    return sendError(reply, toApiError(new HoldfastError('unauthorized', message)))
  })

  // Methods without fields (`channels`, `info`) are called without a body; validate them as `{}`.
  app.addHook('preValidation', async (req) => {
    if (req.method === 'POST' && req.body === undefined) req.body = {}
  })

  // Fastify allows one not-found handler per prefix; at the root it belongs to the host app.
  if (app.prefix !== '') {
    app.setNotFoundHandler((req, reply) => {
      const name = req.url.slice(app.prefix.length + 1).split('?')[0] ?? ''
      return sendError(reply, toApiError(new HoldfastError('method_not_found', `no API method ${req.method} ${JSON.stringify(name.slice(0, 64))}`)))
    })
  }

  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.path.slice(app.prefix.length),
      schema: r.schema,
      config: { holdfastApiPublic: r.public } satisfies RouteConfig,
      handler: (req) => r.run(req),
    })
  }
}

Object.defineProperty(plugin, Symbol.for('fastify.display-name'), { value: 'holdfast-api' })

export const holdfastApi = plugin
export default plugin
