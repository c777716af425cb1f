import { HoldfastError } from '@holdfast/protocol'
import type { ClientInfo } from '@holdfast/protocol'
import type { ControlMessage, Engine, EngineHandler, StreamPublication } from './engine.js'

/**
 * Engine sharing between the processes of one machine (`holdfast serve --workers N` without
 * Redis): the primary process hosts a real engine (usually a MemoryEngine) behind an
 * `EngineHost`, and each worker talks to it through an `IpcEngine` over the cluster/fork IPC
 * channel. Workers then share streams, offsets, presence, idempotency ids and fan-out, so a
 * client that reconnects to another worker still recovers.
 *
 * The IPC channel must use `serialization: 'advanced'` (structured clone) so binary data from
 * MessagePack clients survives the hop.
 */

/** The engine methods a worker may call on the host. */
const OPS = [
  'subscribe',
  'unsubscribe',
  'publish',
  'history',
  'removeHistory',
  'addPresence',
  'removePresence',
  'presence',
  'presenceStats',
  'publishJoinLeave',
  'publishControl',
  'claimIdempotent',
  'completeIdempotent',
  'releaseIdempotent',
  'occupancy',
  'registerNode',
  'unregisterNode',
  'nodes',
] as const satisfies ReadonlyArray<keyof Engine>

type Op = (typeof OPS)[number]
const OP_SET: ReadonlySet<string> = new Set(OPS)

/** Messages on the IPC channel; `hf` marks them as ours among whatever else the app sends. */
type Request = { hf: 'req'; id: number; op: Op; args: unknown[] }
type Response =
  | { hf: 'res'; id: number; ok: true; value: unknown }
  | { hf: 'res'; id: number; ok: false; code: string; message: string; temporary: boolean }
type Event =
  | { hf: 'pub'; channel: string; pub: StreamPublication }
  | { hf: 'joinleave'; channel: string; kind: 'join' | 'leave'; info: ClientInfo }
  | { hf: 'control'; msg: ControlMessage }
  | { hf: 'state'; ready: boolean }

/** The part of a ChildProcess / cluster Worker / `process` that carries IPC. */
export interface IpcPort {
  send(message: unknown): boolean
  on(event: 'message', listener: (message: unknown) => void): unknown
  off(event: 'message', listener: (message: unknown) => void): unknown
  readonly connected: boolean
}

function isOurs(m: unknown): m is { hf: string } {
  return typeof m === 'object' && m !== null && typeof (m as { hf?: unknown }).hf === 'string'
}

/**
 * Primary side: runs the shared engine and serves workers. Publications go only to the workers
 * that subscribed to the channel (the same rule as between nodes over Redis).
 */
export class EngineHost {
  readonly #engine: Engine
  readonly #workers = new Map<IpcPort, { channels: Set<string>; listener: (m: unknown) => void }>()
  /** channel → workers subscribed to it. */
  readonly #subs = new Map<string, Set<IpcPort>>()
  #started: Promise<void> | undefined

  constructor(engine: Engine) {
    this.#engine = engine
  }

  start(): Promise<void> {
    this.#started ??= this.#engine.start({
      onPublication: (channel, pub) => this.#toSubscribers(channel, { hf: 'pub', channel, pub }),
      onJoinLeave: (channel, kind, info) => this.#toSubscribers(channel, { hf: 'joinleave', channel, kind, info }),
      onControl: (msg) => this.#toAll({ hf: 'control', msg }),
      onStateChange: (ready) => this.#toAll({ hf: 'state', ready }),
    })
    return this.#started
  }

  get engine(): Engine {
    return this.#engine
  }

  /** Serve a worker until `detach` (call it when the worker exits). */
  attach(port: IpcPort): void {
    const listener = (m: unknown): void => {
      if (isOurs(m) && m.hf === 'req') void this.#serve(port, m as Request)
    }
    this.#workers.set(port, { channels: new Set(), listener })
    port.on('message', listener)
  }

  /** Forget a worker: its channel interest is dropped (the engine unsubscribes channels nobody wants). */
  detach(port: IpcPort): void {
    const w = this.#workers.get(port)
    if (w === undefined) return
    port.off('message', w.listener)
    this.#workers.delete(port)
    for (const channel of w.channels) this.#dropInterest(port, channel)
  }

  async close(): Promise<void> {
    for (const port of [...this.#workers.keys()]) this.detach(port)
    await this.#engine.close()
  }

  async #serve(port: IpcPort, req: Request): Promise<void> {
    let res: Response
    try {
      if (!OP_SET.has(req.op)) throw new HoldfastError('bad_request', `unknown engine operation ${String(req.op)}`)
      await this.start()
      const value = await this.#call(port, req.op, req.args)
      res = { hf: 'res', id: req.id, ok: true, value }
    } catch (err) {
      const e = err instanceof HoldfastError ? err : new HoldfastError('internal', err instanceof Error ? err.message : String(err))
      // `temporary` travels too: a budget refusal (limit_exceeded) is temporary where its code is not.
      res = { hf: 'res', id: req.id, ok: false, code: e.code, message: e.message, temporary: e.temporary }
    }
    if (port.connected) port.send(res)
  }

  #call(port: IpcPort, op: Op, args: unknown[]): Promise<unknown> {
    const channel = args[0] as string
    if (op === 'subscribe') return this.#addInterest(port, channel)
    if (op === 'unsubscribe') {
      this.#dropInterest(port, channel)
      return Promise.resolve()
    }
    const fn = this.#engine[op] as ((...a: unknown[]) => Promise<unknown>) | undefined
    // An engine without occupancy: each worker is its own fleet (every change counts).
    if (fn === undefined) return Promise.resolve(true)
    return fn.apply(this.#engine, args)
  }

  async #addInterest(port: IpcPort, channel: string): Promise<void> {
    let set = this.#subs.get(channel)
    if (set === undefined) {
      set = new Set()
      this.#subs.set(channel, set)
    }
    const first = set.size === 0
    set.add(port)
    this.#workers.get(port)?.channels.add(channel)
    if (first) await this.#engine.subscribe(channel)
  }

  #dropInterest(port: IpcPort, channel: string): void {
    this.#workers.get(port)?.channels.delete(channel)
    const set = this.#subs.get(channel)
    if (set === undefined || !set.delete(port)) return
    if (set.size === 0) {
      this.#subs.delete(channel)
      this.#engine.unsubscribe(channel).catch(() => {})
    }
  }

  #toSubscribers(channel: string, ev: Event): void {
    const set = this.#subs.get(channel)
    if (set === undefined) return
    for (const port of set) if (port.connected) port.send(ev)
  }

  #toAll(ev: Event): void {
    for (const port of this.#workers.keys()) if (port.connected) port.send(ev)
  }
}

export interface IpcEngineOptions {
  /** The channel to the primary. @default process (in a worker) */
  port?: IpcPort
  /** A call with no answer from the primary in this time fails with engine_unavailable. @default 5000 */
  timeoutMs?: number
}

/** Worker side: an Engine whose every call is served by the primary's EngineHost. */
export class IpcEngine implements Engine {
  readonly name = 'ipc'
  readonly #port: IpcPort
  readonly #timeoutMs: number
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }>()
  #nextId = 1
  #handler: EngineHandler | undefined
  #ready = false
  #closed = false
  readonly #listener = (m: unknown): void => this.#onMessage(m)

  constructor(opts: IpcEngineOptions = {}) {
    const port = opts.port ?? (process as unknown as IpcPort)
    if (typeof port.send !== 'function') throw new TypeError('holdfast: IpcEngine needs an IPC channel (run it in a forked worker)')
    this.#port = port
    this.#timeoutMs = opts.timeoutMs ?? 5000
  }

  async start(handler: EngineHandler): Promise<void> {
    if (this.#handler !== undefined) throw new HoldfastError('internal', 'ipc engine already started')
    this.#handler = handler
    this.#port.on('message', this.#listener)
    this.#ready = true
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#ready = false
    this.#port.off('message', this.#listener)
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.reject(new HoldfastError('engine_unavailable', 'engine closed'))
    }
    this.#pending.clear()
  }

  isReady(): boolean {
    return this.#ready && this.#port.connected
  }

  #onMessage(m: unknown): void {
    if (!isOurs(m)) return
    const msg = m as Response | Event
    switch (msg.hf) {
      case 'res': {
        const p = this.#pending.get(msg.id)
        if (p === undefined) return
        this.#pending.delete(msg.id)
        clearTimeout(p.timer)
        if (msg.ok) p.resolve(msg.value)
        else p.reject(new HoldfastError(msg.code as never, msg.message, { temporary: msg.temporary }))
        return
      }
      case 'pub':
        this.#handler?.onPublication(msg.channel, msg.pub)
        return
      case 'joinleave':
        this.#handler?.onJoinLeave(msg.channel, msg.kind, msg.info)
        return
      case 'control':
        this.#handler?.onControl(msg.msg)
        return
      case 'state':
        this.#ready = msg.ready
        this.#handler?.onStateChange?.(msg.ready)
        return
    }
  }

  #call<T>(op: Op, ...args: unknown[]): Promise<T> {
    if (this.#closed || !this.#port.connected) return Promise.reject(new HoldfastError('engine_unavailable', 'no connection to the primary process'))
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new HoldfastError('engine_unavailable', `primary did not answer ${op} within ${this.#timeoutMs} ms`))
      }, this.#timeoutMs)
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer })
      const req: Request = { hf: 'req', id, op, args }
      this.#port.send(req)
    })
  }

  subscribe = (channel: string): Promise<void> => this.#call('subscribe', channel)
  unsubscribe = (channel: string): Promise<void> => this.#call('unsubscribe', channel)
  publish: Engine['publish'] = (channel, data, opts) => this.#call('publish', channel, data, opts)
  history: Engine['history'] = (channel, q) => this.#call('history', channel, q)
  removeHistory: Engine['removeHistory'] = (channel) => this.#call('removeHistory', channel)
  addPresence: Engine['addPresence'] = (channel, info, ttl) => this.#call('addPresence', channel, info, ttl)
  removePresence: Engine['removePresence'] = (channel, client) => this.#call('removePresence', channel, client)
  presence: Engine['presence'] = (channel) => this.#call('presence', channel)
  presenceStats: Engine['presenceStats'] = (channel) => this.#call('presenceStats', channel)
  publishJoinLeave: Engine['publishJoinLeave'] = (channel, kind, info) => this.#call('publishJoinLeave', channel, kind, info)
  publishControl: Engine['publishControl'] = (msg) => this.#call('publishControl', msg)
  claimIdempotent: Engine['claimIdempotent'] = (key, ttl) => this.#call('claimIdempotent', key, ttl)
  completeIdempotent: Engine['completeIdempotent'] = (key, result, ttl) => this.#call('completeIdempotent', key, result, ttl)
  releaseIdempotent: Engine['releaseIdempotent'] = (key) => this.#call('releaseIdempotent', key)
  occupancy = (channel: string, node: string, occupied: boolean, ttl: number): Promise<boolean> => this.#call('occupancy', channel, node, occupied, ttl)
  registerNode: Engine['registerNode'] = (info, ttl) => this.#call('registerNode', info, ttl)
  unregisterNode: Engine['unregisterNode'] = (id) => this.#call('unregisterNode', id)
  nodes: Engine['nodes'] = () => this.#call('nodes')
}
