import type { IncomingMessage, ServerResponse } from 'node:http'
import { Subprotocols } from '@holdfast/protocol'
import { randomBase64url } from '../random-id.js'
import { chooseSubprotocol, refusal, type Accept, type PendingUpgrade, type TransportSink, type TransportSocket } from './transport.js'

/**
 * HTTP streaming: the fallback for clients whose WebSocket upgrade is refused or cut (corporate
 * proxies, some carriers). Same protocol, same frames, same admission; only the carrier differs:
 *
 * - `POST <path>/stream?protocol=<subprotocols>` opens a connection. The response is a stream of
 *   records, each `type (1 byte) · length (4 bytes, big-endian) · payload`:
 *   `1` open `{"id","protocol"}` (first), `2` a protocol frame (exactly what a WebSocket message
 *   would carry), `3` close `{"code","reason"}` (last).
 * - `POST <path>/stream/<id>` carries one client frame (the body), one request at a time per
 *   connection; `204` when taken. `POST <path>/stream/<id>?close=<code>&reason=` closes from the
 *   client.
 *
 * Every request is a CORS "simple request" (POST, text/plain or no body, no custom header), so a
 * page on another origin needs no preflight; responses allow the request's origin (the open
 * request passed the origin check of admission; uplinks carry the connection's capability).
 *
 * The open request goes through the gateway's admission (`PendingUpgrade`) exactly like an
 * upgrade: origin, IP limits, node limit, drain, token. The connection id is a 128-bit random
 * capability: whoever holds it may send frames on that connection, nothing more.
 */

const OPEN = 1
const FRAME = 2
const CLOSE = 3
const HEADER_BYTES = 5

export interface HttpStreamTransportOptions {
  /** Largest client frame (request body), in bytes; a bigger one closes the connection with 1009. */
  maxFrameBytes: number
  /** The gateway's admission, the same as for WebSocket upgrades. */
  admit(pending: PendingUpgrade): void
}

function header(type: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES)
  h[0] = type
  h.writeUInt32BE(length, 1)
  return h
}

function record(type: number, json: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(json))
  return Buffer.concat([header(type, body.byteLength), body])
}

/** One streaming response adapted to the gateway's TransportSocket. */
class StreamSocket implements TransportSocket {
  readonly protocol: string
  readonly #res: ServerResponse
  /** The close this side decided (sent as the last record), for the sink's onClose. */
  closed: { code: number; reason: string } | undefined

  constructor(res: ServerResponse, protocol: string) {
    this.#res = res
    this.protocol = protocol
  }

  get bufferedAmount(): number {
    return this.#res.writableLength
  }

  write(data: Uint8Array): void {
    const res = this.#res
    if (this.closed !== undefined || res.writableEnded) return
    res.cork()
    res.write(header(FRAME, data.byteLength))
    res.write(data)
    process.nextTick(uncork, res)
  }

  close(code: number, reason: string): void {
    if (this.closed !== undefined) return
    this.closed = { code, reason }
    const res = this.#res
    if (!res.writableEnded) res.end(record(CLOSE, { code, reason }))
  }

  terminate(): void {
    this.closed ??= { code: 1006, reason: 'terminated' }
    this.#res.destroy()
  }
}

function uncork(res: ServerResponse): void {
  res.uncork()
}

interface Live {
  socket: StreamSocket
  sink: TransportSink
  /** An uplink request is being read: the next one waits its turn (order is the protocol's). */
  busy: boolean
}

/** CORS: the page's own origin may read the answer (a WebSocket needs no such header; fetch does). */
function cors(req: IncomingMessage): Record<string, string> {
  const origin = req.headers.origin
  return origin === undefined ? {} : { 'access-control-allow-origin': origin, vary: 'Origin' }
}

function send(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): void {
  const r = refusal(status, code, message)
  if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...cors(req) })
  res.end(r.body)
}

/** Read a request body of at most `max` bytes; undefined when it is larger (the request is then drained). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (chunk: Buffer) => {
      size += chunk.byteLength
      if (size > max) over = true
      else if (!over) chunks.push(chunk)
    })
    req.once('end', () => resolve(over ? undefined : Buffer.concat(chunks, size)))
    req.once('error', reject)
  })
}

export class HttpStreamTransport {
  readonly #opts: HttpStreamTransportOptions
  readonly #live = new Map<string, Live>()

  constructor(opts: HttpStreamTransportOptions) {
    this.#opts = opts
  }

  /** Connections carried now. */
  get size(): number {
    return this.#live.size
  }

  /**
   * Answer `req` if it is one of the transport's requests under `path` (`<path>/stream...`);
   * false otherwise (the caller answers it).
   */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const pathname = q === -1 ? url : url.slice(0, q)
    const base = `${path}/stream`
    if (pathname === base) {
      if (req.method !== 'POST') send(req, res, 405, 'bad_request', 'open a stream with POST')
      else this.#open(req, res, new URLSearchParams(q === -1 ? '' : url.slice(q + 1)))
      return true
    }
    if (!pathname.startsWith(`${base}/`)) return false
    const id = pathname.slice(base.length + 1)
    const live = this.#live.get(id)
    if (live === undefined) {
      req.resume()
      send(req, res, 404, 'not_found', 'no such stream (closed, or on another node)')
      return true
    }
    if (req.method !== 'POST') {
      req.resume()
      send(req, res, 405, 'bad_request', 'POST a frame, or ?close=<code> to close')
      return true
    }
    const params = new URLSearchParams(q === -1 ? '' : url.slice(q + 1))
    const close = params.get('close')
    if (close === null) {
      void this.#uplink(req, res, live)
      return true
    }
    req.resume()
    res.writeHead(204, cors(req)).end()
    // The client is gone: end the response; the sink hears the client's code.
    const code = Number(close)
    live.socket.closed ??= { code: Number.isInteger(code) && code >= 1000 && code <= 4999 ? code : 1000, reason: (params.get('reason') ?? '').slice(0, 120) }
    live.socket.terminate()
    return true
  }

  #open(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): void {
    req.resume()
    const offered = new Set((params.get('protocol') ?? '').split(',').map((p) => p.trim()))
    const protocol = chooseSubprotocol(offered)
    this.#opts.admit({
      request: req,
      gone: () => res.destroyed || req.socket.destroyed,
      refuse: (status, code, message, headers) => {
        if (res.headersSent) return
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...cors(req), ...headers })
        res.end(refusal(status, code, message).body)
      },
      upgrade: (accept: Accept) => {
        if (res.destroyed) return
        // Like an upgraded WebSocket: no idle timer on this socket (the server's HTTP guard gives
        // idle connections 15 s); heartbeats find a dead peer instead.
        req.socket.setTimeout(0)
        const id = randomBase64url(16)
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'cache-control': 'no-store, no-transform',
          // nginx: pass each record on at once instead of buffering the response.
          'x-accel-buffering': 'no',
          'x-content-type-options': 'nosniff',
          ...cors(req),
        })
        res.write(record(OPEN, { id, protocol }))
        const socket = new StreamSocket(res, protocol)
        const sink = accept(socket)
        this.#live.set(id, { socket, sink, busy: false })
        res.once('close', () => {
          this.#live.delete(id)
          const c = socket.closed ?? { code: 1006, reason: 'stream closed' }
          socket.closed = c
          sink.onClose(c.code, c.reason)
        })
      },
    })
  }

  async #uplink(req: IncomingMessage, res: ServerResponse, live: Live): Promise<void> {
    if (live.busy) {
      req.resume()
      send(req, res, 409, 'bad_request', 'one frame at a time per stream')
      return
    }
    live.busy = true
    let body: Buffer | undefined
    try {
      body = await readBody(req, this.#opts.maxFrameBytes)
    } catch {
      return
    } finally {
      live.busy = false
    }
    if (body === undefined) {
      send(req, res, 413, 'payload_too_large', `a frame may be at most ${this.#opts.maxFrameBytes} bytes`)
      live.socket.close(1009, 'frame too big')
      return
    }
    res.writeHead(204, cors(req)).end()
    if (live.socket.closed === undefined && body.byteLength > 0) live.sink.onFrame(body, live.socket.protocol === Subprotocols.msgpack)
  }

  /** Forget every stream (the gateway closes the connections themselves when it drains). */
  close(): void {
    this.#live.clear()
  }
}
