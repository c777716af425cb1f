// A scripted holdfast server on a real `ws` WebSocketServer (127.0.0.1, port 0), for edge cases the
// real server will not produce on demand: a test decides what each connection receives and when
// (the idea of centrifuge-js's fakeServer). Every wait is bounded.
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import type { TypedEmitter } from '../../src/emitter.js'
import {
  codecFor,
  type HoldfastError,
  Subprotocols,
  type ClientMessage,
  type Codec,
  type ConnectCommand,
  type ConnectResult,
  type ServerMessage,
} from '@holdfast/protocol'

const DEFAULT_WAIT_MS = 5000

interface Waiter<T> {
  match: (value: T) => boolean
  resolve: (value: T) => void
}

/** Values arriving over time; `take` returns (and consumes) the first one matching, waiting if needed. */
class Inbox<T> {
  readonly all: T[] = []
  #unread: T[] = []
  #waiters: Array<Waiter<T>> = []

  push(value: T): void {
    this.all.push(value)
    const i = this.#waiters.findIndex((w) => w.match(value))
    if (i !== -1) {
      const [w] = this.#waiters.splice(i, 1)
      w?.resolve(value)
    } else this.#unread.push(value)
  }

  take(match: (value: T) => boolean, what: string, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
    const i = this.#unread.findIndex(match)
    if (i !== -1) return Promise.resolve(this.#unread.splice(i, 1)[0] as T)
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
      }, timeoutMs)
      const waiter: Waiter<T> = {
        match,
        resolve: (v) => {
          clearTimeout(timer)
          resolve(v)
        },
      }
      this.#waiters.push(waiter)
    })
  }
}

export class FakeConnection {
  readonly codec: Codec
  readonly #inbox = new Inbox<ClientMessage>()
  /** Number of frames received (a batch counts once) and whether each was binary. */
  readonly frames: boolean[] = []
  readonly closed: Promise<{ code: number; reason: string }>

  constructor(readonly ws: WebSocket) {
    this.codec = codecFor(ws.protocol || undefined)
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.frames.push(isBinary)
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)
      for (const msg of this.codec.decodeClient(isBinary ? new Uint8Array(bytes) : bytes.toString('utf8'))) this.#inbox.push(msg)
    })
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  }

  get received(): readonly ClientMessage[] {
    return this.#inbox.all
  }

  /** The next (unconsumed) message of this type that satisfies `match`. */
  next<T extends ClientMessage['type']>(
    type: T,
    match: (msg: Extract<ClientMessage, { type: T }>) => boolean = () => true,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<Extract<ClientMessage, { type: T }>> {
    return this.#inbox.take(
      (m) => m.type === type && match(m as Extract<ClientMessage, { type: T }>),
      `a "${type}" message`,
      timeoutMs,
    ) as Promise<Extract<ClientMessage, { type: T }>>
  }

  send(...msgs: ServerMessage[]): void {
    const frame = this.codec.frame(msgs.map((m) => this.codec.encode(m)))
    this.ws.send(this.codec.binary ? frame : Buffer.from(frame).toString('utf8'))
  }

  reply(cmd: { id: number }, result: object): void {
    this.send({ id: cmd.id, result })
  }

  replyError(cmd: { id: number }, code: number, message: string, temporary = false): void {
    this.send({ id: cmd.id, error: { code, message, temporary } })
  }

  /** Wait for the connect command and accept it. */
  async acceptConnect(over: Partial<ConnectResult> = {}): Promise<ConnectCommand> {
    const cmd = await this.next('connect')
    const result: ConnectResult = {
      client: `client-${Math.random().toString(36).slice(2, 8)}`,
      session: cmd.session ?? { id: 'session-1', token: 'session-token-1' },
      resumed: cmd.session !== undefined,
      version: 1,
      node: 'fake',
      ping: 25_000,
      ...over,
    }
    this.reply(cmd, result)
    return cmd
  }

  close(code: number, reason = ''): void {
    this.ws.close(code, reason)
  }

  /** Cut the TCP connection without a close frame (the client sees 1006). */
  terminate(): void {
    this.ws.terminate()
  }
}

export class FakeServer {
  readonly #connections = new Inbox<FakeConnection>()

  private constructor(
    readonly wss: WebSocketServer,
    readonly port: number,
  ) {
    wss.on('connection', (ws) => {
      const conn = new FakeConnection(ws)
      this.onConnection?.(conn)
      this.#connections.push(conn)
    })
  }

  /** Runs for every new connection before a test's `nextConnection()` sees it (scripted auto-replies). */
  onConnection: ((conn: FakeConnection) => void) | undefined

  static async start(port = 0): Promise<FakeServer> {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port,
      handleProtocols: (protocols) => (protocols.has(Subprotocols.msgpack) ? Subprotocols.msgpack : protocols.has(Subprotocols.json) ? Subprotocols.json : false),
    })
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve)
      wss.once('error', reject)
    })
    return new FakeServer(wss, (wss.address() as AddressInfo).port)
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`
  }

  get connections(): readonly FakeConnection[] {
    return this.#connections.all
  }

  nextConnection(timeoutMs = DEFAULT_WAIT_MS): Promise<FakeConnection> {
    return this.#connections.take(() => true, 'a connection', timeoutMs)
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate()
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
  }
}

/** A port on 127.0.0.1 where nothing listens (connection refused). */
export async function refusedPort(): Promise<number> {
  const s = await FakeServer.start()
  const port = s.port
  await s.close()
  return port
}

/** The next `event` whose payload satisfies `match`, or a rejection after `timeoutMs`. */
export function waitFor<E extends { error: HoldfastError }, K extends keyof E>(
  emitter: TypedEmitter<E>,
  event: K,
  match: (payload: E[K]) => boolean = () => true,
  timeoutMs = DEFAULT_WAIT_MS,
): Promise<E[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${String(event)}"`))
    }, timeoutMs)
    const off = emitter.on(event, (payload) => {
      if (!match(payload)) return
      clearTimeout(timer)
      off()
      resolve(payload)
    })
  })
}
