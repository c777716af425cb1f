import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyPluginCallback } from 'fastify'
import type { Holdfast } from './holdfast.js'

export interface HoldfastFastifyOptions {
  /** The gateway to serve (from `createHoldfast`). */
  holdfast: Holdfast
  /** WebSocket path. @default '/ws' */
  path?: string
  /** Drain the gateway when Fastify closes. @default true */
  closeWithApp?: boolean
  /** Serve the HTTP-streaming fallback at `<path>/stream` for clients whose upgrade a proxy refuses. @default true */
  httpStream?: boolean
}

/**
 * Fastify plugin: serves holdfast WebSockets on `path` of the app's HTTP server. Upgrades are
 * taken straight from the server's `upgrade` event, so Fastify adds nothing per message.
 *
 * ```ts
 * await app.register(holdfastFastify, { holdfast: createHoldfast(), path: '/ws' })
 * ```
 */
const plugin: FastifyPluginCallback<HoldfastFastifyOptions> = (app: FastifyInstance, opts, done) => {
  if (opts.holdfast === undefined) {
    done(new TypeError('holdfast: the Fastify plugin needs the "holdfast" option (from createHoldfast)'))
    return
  }
  const path = opts.path ?? '/ws'
  opts.holdfast.attach(app.server, { path })
  if (opts.httpStream !== false) {
    // In a context of its own: the transport reads request bodies raw, and only these routes may
    // skip Fastify's body parsing.
    app.register((child: FastifyInstance, _o: unknown, registered: (err?: Error) => void) => {
      child.removeAllContentTypeParsers()
      child.addContentTypeParser('*', (_req, _payload, parsed) => parsed(null, undefined))
      const stream = (req: { raw: IncomingMessage }, reply: { hijack(): void; raw: ServerResponse }): void => {
        reply.hijack()
        if (!opts.holdfast.handleHttpStream(req.raw, reply.raw, path)) reply.raw.writeHead(404).end()
      }
      child.route({ method: 'POST', url: `${path}/stream`, handler: stream })
      child.route({ method: 'POST', url: `${path}/stream/:id`, handler: stream })
      registered()
    })
  }
  // preClose, not onClose: the HTTP server's close waits for upgraded sockets too, so draining
  // after it would wait forever.
  if (opts.closeWithApp !== false) app.addHook('preClose', async () => opts.holdfast.close())
  done()
}

// Skip Fastify's encapsulation: the upgrade listener belongs to the one HTTP server anyway.
Object.defineProperty(plugin, Symbol.for('skip-override'), { value: true })
Object.defineProperty(plugin, Symbol.for('fastify.display-name'), { value: 'holdfast' })

export const holdfastFastify = plugin
export { holdfastDiscovery, discoveryDocument, type DiscoveryDocument, type HoldfastDiscoveryOptions } from './discovery.js'
export default plugin
