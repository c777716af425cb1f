// Real holdfast nodes (createHoldfast on node:http, 127.0.0.1) for the client's integration tests.
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHoldfast, MemoryEngine, type Engine, type EngineHandler, type Holdfast, type HoldfastOptions } from '@holdfast/server'

/**
 * One MemoryEngine shared by successive (or concurrent) nodes, standing in for Redis: history and
 * idempotency ids outlive a node. A MemoryEngine accepts a single `start()`, so every node gets a
 * view whose `start` registers its handler with one fan-out handler, and whose `close` leaves the
 * shared engine running (as a node leaves Redis running).
 */
export class SharedEngine {
  readonly inner = new MemoryEngine()
  readonly #handlers = new Set<EngineHandler>()
  #started: Promise<void> | undefined

  forNode(): Engine {
    const inner = this.inner
    const handlers = this.#handlers
    let mine: EngineHandler | undefined
    const start = (handler: EngineHandler): Promise<void> => {
      mine = handler
      handlers.add(handler)
      this.#started ??= inner.start({
        onPublication: (channel, pub) => handlers.forEach((h) => h.onPublication(channel, pub)),
        onJoinLeave: (channel, kind, info) => handlers.forEach((h) => h.onJoinLeave(channel, kind, info)),
        onControl: (msg) => handlers.forEach((h) => h.onControl(msg)),
        onStateChange: (ready) => handlers.forEach((h) => h.onStateChange?.(ready)),
      })
      return this.#started
    }
    const close = async (): Promise<void> => {
      if (mine !== undefined) handlers.delete(mine)
    }
    return new Proxy(inner, {
      get(target, prop) {
        if (prop === 'start') return start
        if (prop === 'close') return close
        const value: unknown = Reflect.get(target, prop, target)
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    }) as Engine
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}

export interface Node {
  hf: Holdfast
  /** undefined on the uws transport (HOLDFAST_TEST_TRANSPORT=uws): uWebSockets.js listens by itself. */
  http: Server | undefined
  port: number
  url: string
  /** Drain (clients get "restart") and stop listening; the shared engine survives. Idempotent. */
  stop(): Promise<void>
}

/** A node whose gateway is ready but not yet listening: it can publish while clients cannot reach it. */
export async function createNode(engine: SharedEngine, options: HoldfastOptions = {}): Promise<{ hf: Holdfast; listen(port?: number): Promise<Node> }> {
  const view = engine.forNode()
  const transport = process.env['HOLDFAST_TEST_TRANSPORT'] === 'uws' ? 'uws' : 'ws'
  const hf = createHoldfast({ logger: false, transport, ...options, engine: view })
  await hf.ready()
  return {
    hf,
    async listen(port = 0): Promise<Node> {
      if (transport === 'uws') {
        const actual = await hf.listen({ host: '127.0.0.1', port })
        let stopped: Promise<void> | undefined
        const stop = async (): Promise<void> => {
          await hf.close({ drainMs: 0 })
          await view.close()
        }
        return { hf, http: undefined, port: actual, url: `ws://127.0.0.1:${actual}/ws`, stop: () => (stopped ??= stop()) }
      }
      const http = createServer((_req, res) => res.writeHead(404).end())
      hf.attach(http)
      http.listen(port, '127.0.0.1')
      await once(http, 'listening')
      const actual = (http.address() as AddressInfo).port
      let stopped: Promise<void> | undefined
      const stop = async (): Promise<void> => {
        await hf.close({ drainMs: 0 })
        await view.close()
        http.closeAllConnections()
        await new Promise<void>((resolve) => http.close(() => resolve()))
      }
      return {
        hf,
        http,
        port: actual,
        url: `ws://127.0.0.1:${actual}/ws`,
        stop: () => (stopped ??= stop()),
      }
    },
  }
}

export async function startNode(engine: SharedEngine, options: HoldfastOptions = {}, port = 0): Promise<Node> {
  return (await createNode(engine, options)).listen(port)
}

/** A `canPublish` hook that holds every publish until `open()`: a publish the server has but has not acked. */
export function publishGate(): { options: Pick<HoldfastOptions, 'canPublish'>; attempts(): number; open(): void } {
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  let attempts = 0
  return {
    options: {
      canPublish: async () => {
        attempts++
        await opened
        return true
      },
    },
    attempts: () => attempts,
    open: () => open(),
  }
}
