/**
 * The application's lifecycle hooks (`onConnect`, `onSubscribe`, `onPublish`, `onDisconnect`):
 * what a hook hears about a connection, and how a hook runs without being able to break the node.
 */
import type { Logger } from 'pino'
import type { Counters } from './counters.js'
import type { ConnectionInfo } from './options.js'

/** What a hook (and every application callback: canSubscribe, canPublish, RPC handlers) hears about a connection. */
export function connectionInfo(conn: { id: string; user: string; session: string; ip: string; info: unknown }): ConnectionInfo {
  return conn.info === undefined
    ? { client: conn.id, user: conn.user, session: conn.session, ip: conn.ip }
    : { client: conn.id, user: conn.user, session: conn.session, ip: conn.ip, info: conn.info }
}

/**
 * Call an application hook without letting it break the gateway: a throw or a rejection goes to
 * `onError`, and the gateway never waits for a returned promise.
 */
export function runHook(name: string, call: () => unknown, onError: (name: string, err: unknown) => void): void {
  let out: unknown
  try {
    out = call()
  } catch (err) {
    onError(name, err)
    return
  }
  if (typeof out === 'object' && out !== null && typeof (out as { then?: unknown }).then === 'function') {
    ;(out as PromiseLike<unknown>).then(undefined, (err: unknown) => onError(name, err))
  }
}

/** A hook runner for a node: what a hook throws is logged (on the connection's lines when there is one) and counted, never propagated. */
export type HookRunner = (name: string, call: () => unknown, conn?: { readonly log: Logger | undefined }) => void

export function createHookRunner(counters: Counters, log: Logger | undefined): HookRunner {
  return (name, call, conn) =>
    runHook(name, call, (hook, err) => {
      counters.inc('hook_errors', hook)
      ;(conn?.log ?? log)?.error({ err, hook }, 'application hook failed')
    })
}
