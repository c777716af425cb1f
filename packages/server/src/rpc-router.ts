import { HoldfastError } from '@holdfast/protocol'
import type { ConnectionInfo } from './options.js'

export interface RpcContext {
  client: ConnectionInfo
  method: string
}

/** An RPC method: the return value is the reply's data; throw a HoldfastError to refuse with its code. */
export type RpcHandler = (ctx: RpcContext, data: unknown) => unknown

const METHOD_RE = /^[A-Za-z0-9_.:/-]{1,128}$/

/** The message router of the seeds' articles: method name → handler. */
export class RpcRouter {
  readonly #handlers = new Map<string, RpcHandler>()

  add(method: string, handler: RpcHandler): void {
    if (!METHOD_RE.test(method)) throw new TypeError(`holdfast: RPC method name "${method}" must match ${METHOD_RE}`)
    if (typeof handler !== 'function') throw new TypeError(`holdfast: RPC handler for "${method}" must be a function`)
    if (this.#handlers.has(method)) throw new TypeError(`holdfast: RPC method "${method}" is already registered`)
    this.#handlers.set(method, handler)
  }

  /** The handler of `method`, or undefined (the backend proxy may serve it). */
  find(method: string): RpcHandler | undefined {
    return this.#handlers.get(method)
  }

  /** A method name any handler (or the backend) could have. */
  static validName(method: string): boolean {
    return METHOD_RE.test(method)
  }

  get(method: string): RpcHandler {
    const h = this.#handlers.get(method)
    if (h === undefined) throw new HoldfastError('method_not_found', `no RPC method "${method.slice(0, 128)}"`)
    return h
  }
}
