import type { IncomingHttpHeaders } from 'node:http'
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket, us_socket_context_t } from '@trufflesuite/uws-js-unofficial'
import { loadUws, type Uws } from './load-uws.js'
import { chooseSubprotocol, refusal, type Accept, type PendingUpgrade, type TransportSink, type TransportSocket } from './transport.js'

export interface UwsTransportOptions {
  /** Largest inbound frame, in bytes (the same bound as the ws transport's maxPayload). */
  maxFrameBytes: number
  compression: boolean
  /** The gateway's admission: decides every upgrade (limits, origin, auth) before it completes. */
  admit: (pending: PendingUpgrade) => void
}

/** uWS's send() result when it dropped the message for backpressure. */
const DROPPED = 2
const decoder = new TextDecoder()

/**
 * uWS's user data. uWS.js copies its properties onto the native WebSocket object (getUserData()
 * returns that object), so the adapter cannot be the user data itself: its methods would not
 * come along, and the native close()/send() would answer instead.
 */
interface UserData {
  socket: UwsSocket
}

/**
 * Adapts a uWS WebSocket to TransportSocket (one small object per connection). A uWS socket must never be touched after its close event (the call throws), so
 * every method checks `ws` first: it is cleared on close.
 */
class UwsSocket implements TransportSocket {
  ws: WebSocket<UserData> | undefined = undefined
  sink: TransportSink | undefined = undefined
  /** The gateway's accept callback, held only between the upgrade and uWS's open event. */
  accept: Accept | undefined
  /** We closed it: uWS reports the close synchronously, inside end()/close(). */
  ours = false
  readonly protocol: string

  constructor(protocol: string, accept: Accept) {
    this.protocol = protocol
    this.accept = accept
  }

  get bufferedAmount(): number {
    return this.ws === undefined ? 0 : this.ws.getBufferedAmount()
  }

  write(data: Uint8Array, binary: boolean): void {
    const ws = this.ws
    if (ws === undefined) return
    // maxBackpressure is off, so uWS never drops; should that ever change, a drop must not be
    // silent: the client would miss a message with no gap to recover from. Close it instead.
    if (ws.send(data, binary, false) === DROPPED) this.close(1011, 'send dropped')
  }

  close(code: number, reason: string): void {
    const ws = this.ws
    if (ws === undefined) return
    this.ours = true
    ws.end(code, reason)
  }

  terminate(): void {
    const ws = this.ws
    if (ws === undefined) return
    this.ours = true
    ws.close()
  }
}

/**
 * The uWebSockets.js transport: a uWS App that owns its listening socket and serves only the
 * WebSocket endpoint (everything else gets a JSON 404). Admission is the gateway's, through the
 * same PendingUpgrade the ws transport uses, so both refuse and accept identically.
 */
export class UwsTransport {
  readonly #uws: Uws
  readonly #app: TemplatedApp
  #listenSocket: us_listen_socket | undefined

  /** Throws an Error naming the reason when uWS cannot be loaded (no native binary for this Node). */
  constructor(path: string, opts: UwsTransportOptions) {
    const loaded = loadUws()
    if ('error' in loaded) throw new Error(`holdfast: transport "uws" is not available: ${loaded.error}`)
    this.#uws = loaded.uws
    const uws = loaded.uws
    this.#app = uws.App()
    this.#app.ws<UserData>(path, {
      maxPayloadLength: opts.maxFrameBytes,
      compression: opts.compression ? uws.SHARED_COMPRESSOR : uws.DISABLED,
      // 0 disables uWS's drop-above-the-limit: holdfast's own slow-consumer bound (close 4003,
      // then recovery) decides, and a send is never silently skipped.
      maxBackpressure: 0,
      closeOnBackpressureLimit: 0,
      // holdfast runs its own application-level heartbeats; uWS's idle timer would race them.
      idleTimeout: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => upgrade(res, req, context, opts.admit),
      open: (ws) => {
        const s = ws.getUserData().socket
        const accept = s.accept
        s.accept = undefined
        s.ws = ws
        if (accept !== undefined) s.sink = accept(s)
      },
      message: (ws, message, isBinary) => {
        // The ArrayBuffer is only valid during this call: decode text now, copy binary (a
        // MessagePack decode may keep views into it).
        ws.getUserData().socket.sink?.onFrame(isBinary ? new Uint8Array(message.slice(0)) : decoder.decode(message), isBinary)
      },
      close: (ws, code, message) => {
        const s = ws.getUserData().socket
        s.ws = undefined
        const sink = s.sink
        if (sink === undefined) return
        const reason = decoder.decode(message)
        // When we closed it, uWS calls this from inside end()/close(): report it after the caller
        // finished (as ws does), not in the middle of its fan-out or close bookkeeping.
        if (s.ours) queueMicrotask(() => sink.onClose(code, reason))
        else sink.onClose(code, reason)
      },
    })
    this.#app.any('/*', (res) => {
      const r = refusal(404, 'not_found', 'no WebSocket endpoint here')
      res.writeStatus(r.status).writeHeader('Content-Type', 'application/json').end(r.body, true)
    })
  }

  /** Listen on host:port (port 0 picks a free one); resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#app.listen(host, port, (token) => {
        if (token === false) {
          reject(new Error(`holdfast: uWebSockets.js could not listen on ${host}:${port}`))
          return
        }
        this.#listenSocket = token
        resolve(this.#uws.us_socket_local_port(token as never))
      })
    })
  }

  /** Stop listening; open connections are the gateway's to close. */
  close(): void {
    if (this.#listenSocket === undefined) return
    this.#uws.us_listen_socket_close(this.#listenSocket)
    this.#listenSocket = undefined
  }
}

/**
 * uWS's HttpRequest lives on the stack of this call: everything admission needs is copied out
 * before the first await, and the response is watched for an abort (touching an aborted response
 * throws).
 */
function upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t, admit: (p: PendingUpgrade) => void): void {
  const headers: IncomingHttpHeaders = {}
  req.forEach((k, v) => {
    const prev = headers[k]
    headers[k] = typeof prev === 'string' ? `${prev}, ${v}` : v
  })
  const query = req.getQuery()
  const url = query === '' || query === undefined ? req.getUrl() : `${req.getUrl()}?${query}`
  const key = req.getHeader('sec-websocket-key')
  const extensions = req.getHeader('sec-websocket-extensions')
  const version = req.getHeader('sec-websocket-version')
  const offered = new Set(req.getHeader('sec-websocket-protocol').split(',').map((p) => p.trim()))
  const protocol = chooseSubprotocol(offered)
  const remoteAddress = normalizeUwsIp(decoder.decode(res.getRemoteAddressAsText()))
  let done = false
  res.onAborted(() => {
    done = true
  })
  const refuse = (status: number, code: string, message: string, extra: Record<string, string>): void => {
    if (done) return
    done = true
    const r = refusal(status, code, message)
    res.cork(() => {
      res.writeStatus(r.status).writeHeader('Content-Type', 'application/json')
      for (const [k, v] of Object.entries(extra)) res.writeHeader(k, v)
      res.end(r.body, true)
    })
  }
  admit({
    request: { headers, url, method: 'GET', socket: { remoteAddress } },
    gone: () => done,
    refuse,
    upgrade: (accept) => {
      // uWS does not check these; ws answers 400 to the same handshakes (RFC 6455 4.2.1).
      if (version !== '13' || !KEY_RE.test(key)) return refuse(400, 'bad_handshake', 'missing or invalid Sec-WebSocket-Version or Sec-WebSocket-Key', {})
      if (done) return
      done = true
      // uWS runs the open handler inside upgrade(), so `accept` runs synchronously here.
      res.cork(() => res.upgrade<UserData>({ socket: new UwsSocket(protocol, accept) }, key, protocol, extensions, context))
    },
  })
}

/** A Sec-WebSocket-Key is 16 bytes in base64. */
const KEY_RE = /^[+/0-9A-Za-z]{21}[AQgw]==$/

/** uWS prints addresses of an IPv6 socket in full form; give IPv4-mapped ones back as IPv4. */
function normalizeUwsIp(ip: string): string {
  const m = /^0000:0000:0000:0000:0000:ffff:([0-9a-f]{2})([0-9a-f]{2}):([0-9a-f]{2})([0-9a-f]{2})$/i.exec(ip)
  if (m === null) return ip
  return m
    .slice(1)
    .map((h) => parseInt(h as string, 16))
    .join('.')
}
