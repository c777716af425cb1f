import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import { HoldfastError } from '@holdfast/protocol'
import { MemoryEngine, createHoldfast, type AuthenticateHook, type Holdfast, type HoldfastOptions, type NodeInfo, type PublishOptions, type PublishOutcome } from '../src/index.js'
import { holdfastApi } from '../src/api/index.js'
import { holdfastFastify } from '../src/fastify-plugin.js'
import { RawClient } from './helpers.js'

export const API_KEY = 'test-api-key-3f9c2a7e'

/** The connect token is the user name, so tests pick users freely. */
export const tokenIsUser: AuthenticateHook = ({ token }) => ({ user: token ?? '', info: { name: (token ?? '').toUpperCase() } })

/**
 * A memory engine whose backend can be taken away per channel or for the node registry, to see
 * how the API reports engine failures. Everything else is the real memory engine.
 */
export class FlakyEngine extends MemoryEngine {
  readonly downChannels = new Set<string>()
  registryDown = false

  override publish(channel: string, data: unknown, opts: PublishOptions): Promise<PublishOutcome> {
    if (this.downChannels.has(channel)) return Promise.reject(new HoldfastError('engine_unavailable', 'engine unavailable (test)'))
    return super.publish(channel, data, opts)
  }

  override nodes(): Promise<NodeInfo[]> {
    if (this.registryDown) return Promise.reject(new HoldfastError('engine_unavailable', 'registry unavailable (test)'))
    return super.nodes()
  }
}

export interface ApiResponse {
  status: number
  headers: Headers
  // Tests read the parsed body by shape; a wrong shape fails their assertions.
  body: any
}

export interface ApiServer {
  holdfast: Holdfast
  engine: FlakyEngine
  app: FastifyInstance
  base: string
  wsUrl: string
  /** Every route Fastify registered, as the onRoute hook saw it. */
  routes: RouteOptions[]
  /** POST /api/<method> with the API key (or `key`, or none with `key: null`). */
  call(method: string, body?: unknown, opts?: { key?: string | null; headers?: Record<string, string>; raw?: string }): Promise<ApiResponse>
  /** A connected client whose user is `user`. */
  client(user: string): Promise<RawClient & { id: string }>
  close(): Promise<void>
}

/** A real gateway and Fastify app on 127.0.0.1, port 0: WebSockets at /ws, the API at /api. */
export async function startApi(options: HoldfastOptions = {}): Promise<ApiServer> {
  const engine = new FlakyEngine()
  const holdfast = createHoldfast({ logger: false, engine, authenticate: tokenIsUser, ...options })
  const app = Fastify()
  const routes: RouteOptions[] = []
  app.addHook('onRoute', (r) => {
    routes.push(r)
  })
  // A route of the host application: the API's auth hook must not reach it.
  app.get('/hello', async () => ({ hello: 'world' }))
  await app.register(holdfastFastify, { holdfast, closeWithApp: false })
  await app.register(holdfastApi, { holdfast, apiKey: API_KEY, prefix: '/api' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await holdfast.ready()
  const port = (app.server.address() as AddressInfo).port
  const base = `http://127.0.0.1:${port}`
  const clients: RawClient[] = []
  return {
    holdfast,
    engine,
    app,
    base,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    routes,
    async call(method, body, opts = {}) {
      const key = opts.key === undefined ? API_KEY : opts.key
      const headers: Record<string, string> = { ...(key === null ? {} : { authorization: `apikey ${key}` }), ...opts.headers }
      const payload = opts.raw ?? (body === undefined ? undefined : JSON.stringify(body))
      if (payload !== undefined) headers['content-type'] ??= 'application/json'
      const res = await fetch(`${base}/api/${method}`, { method: 'POST', headers, ...(payload === undefined ? {} : { body: payload }) })
      const text = await res.text()
      return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }
    },
    async client(user) {
      const c = new RawClient(`ws://127.0.0.1:${port}/ws`)
      clients.push(c)
      const r = await c.connect({ token: user })
      return Object.assign(c, { id: r.client })
    },
    async close() {
      for (const c of clients) c.close()
      await holdfast.close({ drainMs: 0 })
      await app.close()
      await engine.close()
    },
  }
}
