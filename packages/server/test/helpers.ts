import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
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
import type { HoldfastOptions } from '../src/options.js'

export interface TestServer {
  gw: Gateway
  http: Server
  port: number
  url: string
  close(): Promise<void>
}

/** A real gateway on a real HTTP server on 127.0.0.1, port 0. */
export async function startServer(options: HoldfastOptions = {}): Promise<TestServer> {
  const gw = new Gateway({ logger: false, ...options })
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
    this.ws.on('error', () => {})
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l()
  }

  opened(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('close', (code) => reject(new Error(`closed before open: ${code}`)))
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
