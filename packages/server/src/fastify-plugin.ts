import type { FastifyInstance, FastifyPluginCallback } from 'fastify'
import type { Holdfast } from './holdfast.js'

export interface HoldfastFastifyOptions {
  /** The gateway to serve (from `createHoldfast`). */
  holdfast: Holdfast
  /** WebSocket path. @default '/ws' */
  path?: string
  /** Drain the gateway when Fastify closes. @default true */
  closeWithApp?: boolean
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
  opts.holdfast.attach(app.server, { path: opts.path ?? '/ws' })
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
