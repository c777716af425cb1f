import type { FastifyInstance, FastifyPluginCallback } from 'fastify'
import type { Holdfast } from './holdfast.js'

/** How long a client may use a discovery answer before asking again, by default. */
export const DEFAULT_DISCOVERY_TTL_MS = 10_000
/** One registry read serves every request of this long: a fleet of clients polling costs the engine nothing more. */
const CACHE_MS = 1000

/** The body of `GET /discovery`. */
export interface DiscoveryDocument {
  /** Nodes of the fleet that take connections, with the URL clients reach them at. */
  nodes: Array<{ id: string; url: string }>
  /** Seconds the list may be used before asking again. */
  ttl: number
}

/**
 * The ready nodes of this node's fleet, from the engine's registry: nodes that advertise a
 * `publicUrl` and are not draining. Registrations expire (15 s without a heartbeat), so a crashed
 * node leaves the list by itself; a draining one leaves it at once. Sorted by id, so every node
 * answers alike.
 */
export async function discoveryDocument(holdfast: Pick<Holdfast, 'nodes'>, ttlMs = DEFAULT_DISCOVERY_TTL_MS): Promise<DiscoveryDocument> {
  const nodes: DiscoveryDocument['nodes'] = []
  for (const n of await holdfast.nodes()) {
    if (typeof n.url === 'string' && n.draining !== true) nodes.push({ id: n.id, url: n.url })
  }
  nodes.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return { nodes, ttl: Math.max(1, Math.round(ttlMs / 1000)) }
}

export interface HoldfastDiscoveryOptions {
  holdfast: Holdfast
  /** @default '/discovery' */
  path?: string
  /** The `ttl` clients get, in ms. @default 10000 */
  ttlMs?: number
}

/**
 * Fastify plugin: `GET /discovery` answers the fleet's node list (`DiscoveryDocument`) with the
 * same max-age as its `ttl`, readable from any origin (it lists public URLs only), or 503 when the
 * registry cannot be read (clients keep their last list).
 */
const plugin: FastifyPluginCallback<HoldfastDiscoveryOptions> = (app: FastifyInstance, opts, done) => {
  const ttlMs = opts.ttlMs ?? DEFAULT_DISCOVERY_TTL_MS
  let cached: { at: number; doc: Promise<DiscoveryDocument> } | undefined
  app.get(opts.path ?? '/discovery', async (_req, reply) => {
    void reply.header('access-control-allow-origin', '*')
    const now = Date.now()
    if (cached === undefined || now - cached.at >= CACHE_MS) cached = { at: now, doc: discoveryDocument(opts.holdfast, ttlMs) }
    let doc: DiscoveryDocument
    try {
      doc = await cached.doc
    } catch {
      cached = undefined
      return reply.code(503).header('retry-after', '1').send({ error: { code: 'engine_unavailable', message: 'the node registry cannot be read now' } })
    }
    return reply.header('cache-control', `max-age=${doc.ttl}`).send(doc)
  })
  done()
}

Object.defineProperty(plugin, Symbol.for('skip-override'), { value: true })
Object.defineProperty(plugin, Symbol.for('fastify.display-name'), { value: 'holdfast-discovery' })

export const holdfastDiscovery = plugin
