import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach } from 'node:test'
import {
  jsonCodec,
  msgpackCodec,
  type Codec,
  type Command,
  type Push,
  type ServerMessage,
} from '@holdfast/protocol'
import WebSocket from 'ws'
import { Gateway } from '../src/gateway.js'
import type { HoldfastOptions, TransportName } from '../src/options.js'

export interface TestServer {
  gw: Gateway
  /** The node:http server the gateway is attached to; undefined on the uws transport (it listens by itself). */
  http: Server | undefined
  port: number
  url: string
  close(): Promise<void>
}

/** The transport the WebSocket-level tests run on: `HOLDFAST_TEST_TRANSPORT=uws npm run test:uws` runs them on uWebSockets.js. */
export const TEST_TRANSPORT: TransportName = process.env['HOLDFAST_TEST_TRANSPORT'] === 'uws' ? 'uws' : 'ws'

/**
 * A real gateway on 127.0.0.1, port 0: attached to a real node:http server (ws transport), or
 * listening with uWebSockets.js when HOLDFAST_TEST_TRANSPORT=uws.
 */
export async function startServer(options: HoldfastOptions = {}): Promise<TestServer> {
  const gw = new Gateway({ logger: false, transport: TEST_TRANSPORT, ...options })
  if (gw.options.transport === 'uws') {
    const port = await gw.listen({ host: '127.0.0.1', port: 0 })
    await gw.ready()
    return { gw, http: undefined, port, url: `ws://127.0.0.1:${port}/ws`, close: () => gw.close({ drainMs: 0 }) }
  }
  const http = createServer((_req, res) => res.writeHead(404).end())
  gw.attach(http)
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  await gw.ready()
  const port = (http.address() as AddressInfo).port
  return {
    gw,
    http,
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    async close() {
      await gw.close({ drainMs: 0 })
      http.closeAllConnections()
      await new Promise<void>((r) => http.close(() => r()))
    },
  }
}

/** What `serverPerTest()` hands a suite. */
export interface ServerFixture {
  /** Start a server (the suite's defaults, then `options`); closed after the test. */
  start(options?: HoldfastOptions): Promise<TestServer>
  /** The server the running test started last (throws if it started none). */
  readonly server: TestServer
  /** A RawClient closed after the test. */
  client(url: string, opts?: ConstructorParameters<typeof RawClient>[1]): RawClient
  /** A raw socket terminated after the test. */
  socket(ws: WebSocket): WebSocket
  /** Close the test's clients now. */
  closeClients(): void
}

/**
 * The setup every gateway suite repeats, in one place: call it inside a `describe` and what each
 * test starts or opens through it is torn down after that test, in this order: clients closed,
 * raw sockets terminated, servers closed.
 */
export function serverPerTest(defaults: HoldfastOptions = {}): ServerFixture {
  const servers: TestServer[] = []
  const clients: RawClient[] = []
  const sockets: WebSocket[] = []
  const closeClients = (): void => {
    for (const c of clients.splice(0)) c.close()
  }
  afterEach(async () => {
    closeClients()
    for (const s of sockets.splice(0)) s.terminate()
    for (const s of servers.splice(0)) await s.close()
  })
  return {
    async start(options = {}) {
      const s = await startServer({ ...defaults, ...options })
      servers.push(s)
      return s
    },
    get server() {
      const s = servers.at(-1)
      if (s === undefined) throw new Error('no server started in this test')
      return s
    },
    client(url, opts) {
      const c = new RawClient(url, opts)
      clients.push(c)
      return c
    },
    socket(ws) {
      sockets.push(ws)
      return ws
    },
    closeClients,
  }
}

/** Resolve when `pred` holds, polling; reject after `ms`. For state that has no event. */
export async function waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/**
 * A protocol-level test client on a real `ws` socket: sends commands, matches replies by id and
 * records every push, so tests can assert on exactly what went over the wire.
 */
export class RawClient {
  readonly ws: WebSocket
  readonly codec: Codec
  readonly pushes: Push[] = []
  closed: { code: number; reason: string } | undefined
  #nextId = 1
  #waiters = new Map<number, (msg: ServerMessage) => void>()
  #listeners = new Set<() => void>()
  answerPings = true

  constructor(url: string, opts: { protocol?: 'json' | 'msgpack'; headers?: Record<string, string>; noSubprotocol?: boolean } = {}) {
    this.codec = opts.protocol === 'msgpack' ? msgpackCodec : jsonCodec
    this.ws = new WebSocket(url, opts.noSubprotocol ? [] : [this.codec.subprotocol], opts.headers ? { headers: opts.headers } : {})
    this.ws.binaryType = 'nodebuffer'
    this.ws.on('message', (data: Buffer, isBinary) => {
      for (const msg of this.codec.decodeServer(isBinary ? new Uint8Array(data) : data.toString())) {
        if ('id' in msg && typeof msg.id === 'number') {
          this.#waiters.get(msg.id)?.(msg)
          this.#waiters.delete(msg.id)
        } else {
          const push = msg as Push
          if (push.type === 'ping' && this.answerPings) this.sendRaw({ type: 'pong' })
          this.pushes.push(push)
        }
      }
      this.#notify()
    })
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
      this.#notify()
    })
    // Kept for the message of a connection that fails before it opens (ECONNRESET, a bad handshake).
    this.ws.on('error', (err) => (this.#error = err))
  }

  #error: Error | undefined

  #notify(): void {
    for (const l of [...this.#listeners]) l()
  }

  opened(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('close', (code) => reject(new Error(`closed before open: ${code}${this.#error ? ` (${this.#error.message})` : ''}`)))
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })))
    })
  }

  sendRaw(msg: object): void {
    this.ws.send(this.codec.encode(msg as Command), { binary: this.codec.binary })
  }

  /** Send a command (the id is filled in) and resolve with its reply. */
  request(cmd: Record<string, unknown> & { type: string }, timeoutMs = 5000): Promise<ServerMessage & { id: number }> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${cmd.type} in ${timeoutMs} ms`)), timeoutMs)
      this.#waiters.set(id, (msg) => {
        clearTimeout(t)
        resolve(msg as ServerMessage & { id: number })
      })
      this.sendRaw({ ...cmd, id })
    })
  }

  /** Like request, but the reply must be a result. */
  async call<T = Record<string, unknown>>(cmd: Record<string, unknown> & { type: string }): Promise<T> {
    const reply = (await this.request(cmd)) as { result?: T; error?: unknown }
    if (reply.error !== undefined) throw Object.assign(new Error(`error reply: ${JSON.stringify(reply.error)}`), { reply: reply.error })
    return reply.result as T
  }

  async connect(extra: Record<string, unknown> = {}): Promise<{ client: string; session: { id: string; token: string }; resumed: boolean }> {
    await this.opened()
    return this.call({ type: 'connect', version: 1, ...extra })
  }

  /** Resolve when `pred` holds for this client (checked after every message/close), or reject after `ms`. */
  until(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    if (pred()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pred()) {
          clearTimeout(t)
          this.#listeners.delete(check)
          resolve()
        }
      }
      const t = setTimeout(() => {
        this.#listeners.delete(check)
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
      }, ms)
      this.#listeners.add(check)
    })
  }

  pubs(channel?: string): Array<Extract<Push, { type: 'pub' }>> {
    return this.pushes.filter((p): p is Extract<Push, { type: 'pub' }> => p.type === 'pub' && (channel === undefined || p.channel === channel))
  }

  waitClosed(ms = 5000): Promise<{ code: number; reason: string }> {
    return this.until(() => this.closed !== undefined, ms, 'close').then(() => this.closed as { code: number; reason: string })
  }

  close(): void {
    this.ws.terminate()
  }
}

// ---------------------------------------------------------------- added for the limits/auth/input/leak/access suites

/** How an upgrade attempt ended: refused with an HTTP status (no WebSocket ever existed), or open. */
export type UpgradeOutcome =
  | { status: number; headers: import('node:http').IncomingHttpHeaders; body: string }
  | { ws: WebSocket }

/**
 * Attempt a WebSocket upgrade with raw `ws` options (headers, origin, localAddress...) and report
 * the HTTP status of a refusal, or the open socket. Rejects if neither happens within `ms`.
 */
export function tryUpgrade(url: string, opts: WebSocket.ClientOptions & { protocols?: string[] } = {}, ms = 5000): Promise<UpgradeOutcome> {
  const { protocols = [jsonCodec.subprotocol], ...wsOpts } = opts
  const ws = new WebSocket(url, protocols, wsOpts)
  ws.on('error', () => {})
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      ws.terminate()
      reject(new Error(`upgrade of ${url} neither opened nor was refused in ${ms} ms`))
    }, ms)
    ws.once('open', () => {
      clearTimeout(t)
      resolve({ ws })
    })
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => {
        clearTimeout(t)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body })
      })
      res.on('error', () => {})
    })
    ws.once('close', (code) => {
      clearTimeout(t)
      reject(new Error(`closed with ${code} before open`))
    })
  })
}

/**
 * Wait for the server to close `c` and check how: a `disconnect` push carrying `code` must be the
 * last thing received (unless `push` is false: ws itself refused the frame, so holdfast never saw
 * it) and the close frame must carry `code` too.
 */
export async function expectClosedWith(c: RawClient, code: number, opts: { push?: boolean; ms?: number } = {}): Promise<{ code: number; reason: string }> {
  const closed = await c.waitClosed(opts.ms ?? 5000)
  if (closed.code !== code) throw new Error(`expected close code ${code}, got ${closed.code} (${closed.reason})`)
  const last = c.pushes.at(-1)
  if (opts.push !== false) {
    if (last?.type !== 'disconnect' || last.code !== code) {
      throw new Error(`expected a disconnect push with code ${code} before the close, last push was ${JSON.stringify(last)}`)
    }
  } else if (c.pushes.some((p) => p.type === 'disconnect')) {
    throw new Error(`expected no disconnect push (ws refused the frame itself), got ${JSON.stringify(last)}`)
  }
  return closed
}

/** One trip round the event loop: lets coalesced writes (setImmediate) go out. */
export function turn(): Promise<void> {
  return new Promise((r) => setImmediate(r))
}

/**
 * Send raw bytes to 127.0.0.1:port over TCP and resolve with everything the server wrote before it
 * closed the socket (or `ms` passed). For requests `ws` clients refuse to build.
 */
export async function rawRequest(port: number, bytes: string | Buffer, ms = 3000): Promise<string> {
  const { connect } = await import('node:net')
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const sock = connect(port, '127.0.0.1', () => sock.write(bytes))
    const done = (): void => {
      clearTimeout(t)
      sock.destroy()
      resolve(Buffer.concat(chunks).toString('latin1'))
    }
    const t = setTimeout(done, ms)
    sock.on('data', (d: Buffer) => chunks.push(d))
    sock.on('close', done)
    sock.on('error', () => {})
  })
}
