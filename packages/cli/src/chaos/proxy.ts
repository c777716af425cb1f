/**
 * ChaosProxy: a TCP proxy that injects network faults between a client and a server.
 *
 * Why our own instead of Toxiproxy: Toxiproxy is a separate Go binary to install and run beside
 * every test, while the reliability suite needs faults that a test toggles in-process, and users
 * get the proxy with `npm install holdfast`. This covers the toxics we need (latency/jitter, bandwidth, reset, timeout-style blackhole,
 * slicer, limit_data) with node:net only, and adds refused connections and paused accepts.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { ChaosConnection } from './connection.js'
import { applyFaultPatch, cloneFaults, noFaults, type Direction, type FaultConfig, type FaultPatch } from './faults.js'

export interface Endpoint {
  host: string
  port: number
}

/** Options of `new ChaosProxy()`. */
export interface ChaosProxyOptions {
  /** Where clients connect. Port 0 picks a free one (read it from `proxy.port`). @default { host: '127.0.0.1', port: 0 } */
  listen?: { host?: string; port?: number }
  /** The server every connection is forwarded to. Required. */
  target: Endpoint
  /** Faults active from the start. @default no faults */
  faults?: FaultPatch
  /** Source of randomness in [0, 1) for jitter, resets and refusals; inject a seeded one for repeatable runs. @default Math.random */
  random?: () => number
  /** How often `resetProbability` is rolled for each connection, in ms. @default 100 */
  resetCheckMs?: number
}

/** Counters since `start()`. */
export interface ChaosStats {
  /** Connections being proxied now. */
  connections: number
  /** Connections accepted in total (refused ones included). */
  totalConnections: number
  /** Connections accepted while paused, waiting for `resume()`. */
  pendingConnections: number
  /** false between `pause()` and `resume()`. */
  accepting: boolean
  /** Bytes written to the target. */
  bytesUpstream: number
  /** Bytes written to clients. */
  bytesDownstream: number
  /** Bytes swallowed by a blackhole (`drop` mode). */
  bytesDropped: number
  /** Connections reset by `resetAll()`, `POST /reset` or `resetProbability`. */
  resets: number
  /** New connections refused by `dropProbability`. */
  refused: number
  /** Connections closed by `closeAfterBytes`. */
  closedAfterBytes: number
}

const DEFAULTS = {
  listen: { host: '127.0.0.1', port: 0 },
  random: Math.random,
  resetCheckMs: 100,
} as const

interface ResolvedOptions {
  listen: Endpoint
  target: Endpoint
  faults: FaultConfig
  random: () => number
  resetCheckMs: number
}

function checkPort(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 65535) {
    throw new TypeError(`${name} must be an integer from ${min} to 65535, got ${JSON.stringify(v) ?? String(v)}`)
  }
  return v
}

function checkHost(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.trim() === '') throw new TypeError(`${name} must be a host name or IP address, got ${JSON.stringify(v) ?? String(v)}`)
  return v
}

function resolveOptions(options: ChaosProxyOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('ChaosProxy options must be an object')
  if (typeof options.target !== 'object' || options.target === null) throw new TypeError('target must be { host, port }')
  const random = options.random ?? DEFAULTS.random
  if (typeof random !== 'function') throw new TypeError('random must be a function returning a number in [0, 1)')
  const resetCheckMs = options.resetCheckMs ?? DEFAULTS.resetCheckMs
  if (typeof resetCheckMs !== 'number' || !(resetCheckMs >= 1 && resetCheckMs <= 60_000)) {
    throw new TypeError(`resetCheckMs must be a number from 1 to 60000, got ${String(resetCheckMs)}`)
  }
  return {
    listen: {
      host: checkHost('listen.host', options.listen?.host ?? DEFAULTS.listen.host),
      port: checkPort('listen.port', options.listen?.port ?? DEFAULTS.listen.port, 0),
    },
    target: { host: checkHost('target.host', options.target.host), port: checkPort('target.port', options.target.port, 1) },
    faults: options.faults === undefined ? noFaults() : applyFaultPatch(noFaults(), options.faults),
    random,
    resetCheckMs,
  }
}

/**
 * A TCP proxy from `listen` to `target` with run-time faults. Start it, point clients at
 * `proxy.port`, and change the faults at any time with `setFaults()`, `heal()`, `resetAll()`,
 * `pause()` and `resume()`; or serve them over HTTP with `startControlApi()`.
 */
export class ChaosProxy {
  readonly target: Endpoint
  private readonly listenAt: Endpoint
  private config: FaultConfig
  private readonly random: () => number
  private readonly resetCheckMs: number
  private server: Server | undefined
  private readonly active = new Set<ChaosConnection>()
  /** Sockets accepted while paused: the kernel has completed their handshake, nobody reads them. */
  private readonly pending = new Set<Socket>()
  private paused = false
  private stopping: Promise<void> | undefined
  private resetTimer: NodeJS.Timeout | undefined
  private lastResetCheck = 0
  private readonly counters = {
    totalConnections: 0,
    bytesUpstream: 0,
    bytesDownstream: 0,
    bytesDropped: 0,
    resets: 0,
    refused: 0,
    closedAfterBytes: 0,
  }

  constructor(options: ChaosProxyOptions) {
    const o = resolveOptions(options)
    this.listenAt = o.listen
    this.target = o.target
    this.config = o.faults
    this.random = o.random
    this.resetCheckMs = o.resetCheckMs
  }

  /** Bind the listening socket. Resolves once connections are accepted. */
  async start(): Promise<void> {
    if (this.server !== undefined) throw new Error('ChaosProxy already started')
    // allowHalfOpen: a client's FIN is forwarded by its link, after the bytes before it; it must
    // not close our side towards the client, which may still have delayed bytes to deliver.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.listenAt.port, this.listenAt.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.syncResetTimer()
  }

  /** Close the listener and every connection, and clear every timer. Safe to call twice. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const server = this.server
      if (this.resetTimer !== undefined) clearInterval(this.resetTimer)
      this.resetTimer = undefined
      for (const socket of this.pending) socket.destroy()
      this.pending.clear()
      for (const conn of this.active) conn.destroy()
      if (server === undefined || !server.listening) return
      await new Promise<void>((resolve) => server.close(() => resolve()))
    })()
    return this.stopping
  }

  /** The port clients connect to (the one picked when listening on port 0). */
  get port(): number {
    const address = this.server?.address()
    if (address === null || address === undefined || typeof address === 'string') throw new Error('ChaosProxy is not listening; call start() first')
    return (address as AddressInfo).port
  }

  get host(): string {
    return this.listenAt.host
  }

  /** Connections being proxied now. */
  get connections(): number {
    return this.active.size
  }

  /** false between `pause()` and `resume()`. */
  get accepting(): boolean {
    return !this.paused
  }

  /** A copy of the current faults. */
  get faults(): FaultConfig {
    return cloneFaults(this.config)
  }

  /**
   * Apply a patch (see FaultPatch) to the current faults and return the result. A bad patch
   * throws a TypeError naming the field and changes nothing. New settings apply at once to every
   * connection; bytes already delayed keep the delay they were given.
   */
  setFaults(patch: FaultPatch): FaultConfig {
    this.config = applyFaultPatch(this.config, patch)
    this.applied()
    return this.faults
  }

  /** Remove every fault. Held or pending FINs and resets are delivered. */
  heal(): FaultConfig {
    this.config = noFaults()
    this.applied()
    return this.faults
  }

  /** Reset (RST both ways) every current connection. Returns how many. */
  resetAll(): number {
    const n = this.active.size
    for (const conn of [...this.active]) this.resetOne(conn)
    return n
  }

  /**
   * Stop accepting: new connections complete the TCP handshake (the kernel does that) but are
   * neither read nor forwarded until `resume()`, like a server whose accept loop is stuck.
   */
  pause(): void {
    this.paused = true
  }

  /** Accept again, starting with the connections that arrived while paused, in order. */
  resume(): void {
    if (!this.paused) return
    this.paused = false
    const waiting = [...this.pending]
    this.pending.clear()
    for (const socket of waiting) this.open(socket)
  }

  stats(): ChaosStats {
    return {
      connections: this.active.size,
      pendingConnections: this.pending.size,
      accepting: !this.paused,
      ...this.counters,
    }
  }

  private accept(socket: Socket): void {
    if (this.stopping !== undefined) {
      socket.destroy()
      return
    }
    this.counters.totalConnections += 1
    if (this.paused) {
      this.pending.add(socket)
      // A waiting client may give up; that must not crash the proxy or leak the socket.
      socket.on('error', () => socket.destroy())
      socket.once('close', () => this.pending.delete(socket))
      return
    }
    this.open(socket)
  }

  private open(socket: Socket): void {
    if (socket.destroyed) return
    if (this.config.dropProbability > 0 && this.random() < this.config.dropProbability) {
      this.counters.refused += 1
      socket.on('error', () => {})
      socket.resetAndDestroy()
      return
    }
    const conn = new ChaosConnection(socket, this.target, {
      faults: () => this.config,
      random: () => this.random(),
      forwarded: (direction: Direction, n: number) => {
        if (direction === 'upstream') this.counters.bytesUpstream += n
        else this.counters.bytesDownstream += n
      },
      dropped: (n) => {
        this.counters.bytesDropped += n
      },
      closedAfterBytes: () => {
        this.counters.closedAfterBytes += 1
      },
      finished: (c) => {
        this.active.delete(c)
      },
    })
    this.active.add(conn)
    // pauseOnConnect left the socket paused so that nothing was read before the links existed.
    socket.resume()
  }

  private resetOne(conn: ChaosConnection): void {
    this.counters.resets += 1
    conn.reset()
  }

  private applied(): void {
    for (const conn of this.active) conn.refresh()
    this.syncResetTimer()
  }

  /** One timer for the whole proxy, running only while resetProbability > 0. */
  private syncResetTimer(): void {
    const wanted = this.config.resetProbability > 0 && this.server !== undefined && this.stopping === undefined
    if (wanted && this.resetTimer === undefined) {
      this.lastResetCheck = performance.now()
      this.resetTimer = setInterval(() => this.rollResets(), this.resetCheckMs)
    } else if (!wanted && this.resetTimer !== undefined) {
      clearInterval(this.resetTimer)
      this.resetTimer = undefined
    }
  }

  private rollResets(): void {
    const now = performance.now()
    const seconds = (now - this.lastResetCheck) / 1000
    this.lastResetCheck = now
    // The chance over this interval that matches `resetProbability` per second, whatever the
    // interval's length: 1 - (1 - p)^t.
    const p = 1 - Math.pow(1 - this.config.resetProbability, seconds)
    for (const conn of [...this.active]) {
      if (this.random() < p) this.resetOne(conn)
    }
  }
}
