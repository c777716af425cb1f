import { Gateway } from './gateway.js'
import type { HoldfastOptions } from './options.js'

/** The gateway's public surface: everything an application calls. */
export type Holdfast = Pick<
  Gateway,
  | 'attach'
  | 'handleUpgrade'
  | 'handleHttpStream'
  | 'listen'
  | 'publish'
  | 'history'
  | 'presence'
  | 'presenceStats'
  | 'disconnect'
  | 'subscribeUser'
  | 'unsubscribeUser'
  | 'send'
  | 'channels'
  | 'onRpc'
  | 'close'
  | 'ready'
  | 'isReady'
  | 'draining'
  | 'connectionCount'
  | 'nodeId'
  | 'nodes'
  | 'nodeInfo'
  | 'counters'
  | 'metrics'
  | 'metricsText'
  | 'on'
  | 'off'
  | 'once'
>

/**
 * Create a gateway node. Attach it to a node:http server (`attach(server)`), or use the Fastify
 * plugin from `@holdfast/server/fastify`; or let it listen on its own port (`await listen({ port })`),
 * the only way with `transport: 'uws'`.
 *
 * ```ts
 * const holdfast = createHoldfast({ jwt: { secret } })
 * holdfast.attach(httpServer)             // WebSocket at /ws
 * await holdfast.publish('chat:lobby', { text: 'hi' })
 * await holdfast.close({ drainMs: 10_000 })
 * ```
 */
export function createHoldfast(options: HoldfastOptions = {}): Holdfast {
  return new Gateway(options)
}
