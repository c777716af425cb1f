import type { Server as HttpServer, ServerOptions as HttpServerOptions } from 'node:http'
import type { Socket } from 'node:net'
import { normalizeIp } from './ip-limiter.js'

/**
 * Limits of an HTTP server that carries WebSocket upgrades, probes and the server API. Node's own
 * defaults leave a TCP connection that never sends a byte open forever (no timer runs until a
 * request starts), let one address open as many connections as the process has file descriptors,
 * and give a slow request five minutes; these bound all three.
 */
export interface HttpGuardOptions {
  /**
   * A connection that sends nothing for this long before its first request, or while a request is
   * being read, is closed. Upgraded WebSockets are not affected (they have heartbeats). In ms.
   * @default 15000
   */
  connectionTimeoutMs?: number
  /** The request line and headers must arrive within this long (slow-header attacks), in ms. @default 10000 */
  headersTimeoutMs?: number
  /** A whole request, body included, must arrive within this long, in ms. @default 30000 */
  requestTimeoutMs?: number
  /**
   * An idle keep-alive connection is closed after this long, in ms. Above the 60 s idle timeout of
   * common load balancers, so that a balancer never reuses a connection this server just closed.
   * @default 72000
   */
  keepAliveTimeoutMs?: number
  /**
   * Open TCP connections one client address may hold on this server, counted when the connection
   * is accepted, before any HTTP is read (WebSockets included); the next one is answered `429`
   * (as the gateway's own per-address cap at the upgrade) and closed. `0` disables the cap (e.g. behind a proxy whose address every connection shares).
   * @default 1100 (the gateway's maxConnectionsPerIp default, 1000, plus room for HTTP requests)
   */
  maxConnectionsPerIp?: number
  /** Called for each connection refused by the per-address cap (e.g. to count it in a metric). */
  onRefused?: (ip: string) => void
}

export const HTTP_GUARD_DEFAULTS = {
  connectionTimeoutMs: 15_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 72_000,
  maxConnectionsPerIp: 1100,
} as const satisfies Required<Omit<HttpGuardOptions, 'onRefused'>>

type ResolvedGuard = Required<Omit<HttpGuardOptions, 'onRefused'>>

function resolve(opts: HttpGuardOptions): ResolvedGuard {
  const out = { ...HTTP_GUARD_DEFAULTS } as ResolvedGuard
  for (const key of Object.keys(HTTP_GUARD_DEFAULTS) as (keyof ResolvedGuard)[]) {
    const v = opts[key]
    if (v === undefined) continue
    // 0 turns a timer or the cap off; anything else must be a whole positive number.
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new TypeError(`holdfast: option "http.${key}" must be a non-negative integer, got ${String(v)}`)
    }
    out[key] = v
  }
  return out
}

/**
 * Options for `http.createServer()`: the timeouts, and how often Node checks them (its default,
 * 30 s, would let a slow header run 40 s past a 10 s limit).
 */
export function httpServerOptions(opts: HttpGuardOptions = {}): HttpServerOptions {
  const o = resolve(opts)
  const shortest = Math.min(...[o.headersTimeoutMs, o.requestTimeoutMs].filter((ms) => ms > 0), 30_000)
  return {
    headersTimeout: o.headersTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    keepAliveTimeout: o.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(250, Math.floor(shortest / 4)),
  }
}

/** What `guardHttpServer` returns: the per-address counts, for tests and diagnostics. */
export interface HttpGuard {
  /** Open connections counted for `ip`. */
  connections(ip: string): number
  /** Addresses with at least one open connection. */
  readonly addresses: number
}

/** The answer to a connection over the cap: written before any byte is read, then the socket closes. */
const REFUSAL_BODY = JSON.stringify({ error: { code: 'too_many_connections', message: 'too many open connections from this address' } })
const REFUSAL =
  'HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json\r\n' +
  `Content-Length: ${Buffer.byteLength(REFUSAL_BODY)}\r\n\r\n${REFUSAL_BODY}`

function refuse(socket: Socket): void {
  socket.on('error', () => {})
  socket.end(REFUSAL, () => socket.destroy())
  // A peer that never reads must not keep the descriptor: the answer is tiny, a second is plenty.
  setTimeout(() => socket.destroy(), 1000).unref()
}

/**
 * Applies the limits to a node:http server (call it before `listen()`; the server may already
 * have its request handler and `upgrade` listeners). The timeouts are set on the server; the
 * per-address cap wraps the server's `connection` listeners, so a refused connection never
 * reaches the HTTP parser. With `http.createServer(httpServerOptions(opts))` the header and
 * request deadlines are also checked often enough to hold to the millisecond values given.
 */
export function guardHttpServer(server: HttpServer, opts: HttpGuardOptions = {}): HttpGuard {
  const o = resolve(opts)
  server.headersTimeout = o.headersTimeoutMs
  server.requestTimeout = o.requestTimeoutMs
  server.keepAliveTimeout = o.keepAliveTimeoutMs
  // The socket idle timer: without a request in progress nothing else ever closes a connection.
  // ws clears it when a connection is upgraded; an idle keep-alive connection uses keepAliveTimeout.
  server.setTimeout(o.connectionTimeoutMs)

  const open = new Map<string, number>()
  const guard: HttpGuard = {
    connections: (ip) => open.get(normalizeIp(ip)) ?? 0,
    get addresses() {
      return open.size
    },
  }
  if (o.maxConnectionsPerIp === 0) return guard

  const max = o.maxConnectionsPerIp
  const onRefused = opts.onRefused
  const listeners = server.listeners('connection') as ((socket: Socket) => void)[]
  server.removeAllListeners('connection')
  server.on('connection', (socket: Socket) => {
    const ip = normalizeIp(socket.remoteAddress ?? '')
    const n = open.get(ip) ?? 0
    if (n >= max) {
      refuse(socket)
      onRefused?.(ip)
      return
    }
    open.set(ip, n + 1)
    socket.once('close', () => {
      const left = (open.get(ip) ?? 1) - 1
      if (left <= 0) open.delete(ip)
      else open.set(ip, left)
    })
    for (const l of listeners) l.call(server, socket)
  })
  return guard
}
