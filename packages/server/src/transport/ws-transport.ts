import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { chooseSubprotocol, refusal, type Accept, type TransportSink, type TransportSocket } from './transport.js'

export interface WsTransportOptions {
  /** Largest inbound frame, in bytes; a bigger one closes the connection with 1009. */
  maxFrameBytes: number
  compression: boolean
}

const BINARY = { binary: true } as const
const TEXT = { binary: false } as const

/** Adapts a `ws` socket to the gateway's TransportSocket (one small object per connection). */
class WsSocket implements TransportSocket {
  readonly #ws: WebSocket
  constructor(ws: WebSocket) {
    this.#ws = ws
  }
  get protocol(): string {
    return this.#ws.protocol
  }
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount
  }
  send(data: Uint8Array, binary: boolean): void {
    this.#ws.send(data, binary ? BINARY : TEXT)
  }
  close(code: number, reason: string): void {
    this.#ws.close(code, reason)
  }
  terminate(): void {
    this.#ws.terminate()
  }
}

/**
 * Wire a socket's events to its sink. A module-level function on purpose: closures created here
 * hold only `sink`, whereas closures created inside `upgrade` would keep its whole scope chain —
 * the caller's `accept`, and through it the upgrade request — alive as long as the connection.
 */
function bind(ws: WebSocket, sink: TransportSink): void {
  ws.on('message', (data, isBinary) => sink.onFrame(data as Buffer, isBinary))
  ws.on('close', (code, reason) => sink.onClose(code, reason.toString()))
  // Errors (bad frames, too big) are followed by 'close' with the right code; nothing to do here.
  ws.on('error', noop)
}

function noop(): void {}

/**
 * The `ws` transport. It only upgrades; every decision (limits, auth, origin) is made by the
 * gateway before `upgrade` is called, so refused requests never become WebSockets.
 */
export class WsTransport {
  readonly #wss: WebSocketServer

  constructor(opts: WsTransportOptions) {
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: opts.maxFrameBytes,
      perMessageDeflate: opts.compression,
      // Prefer MessagePack when offered; otherwise JSON (also when no subprotocol is offered).
      handleProtocols: (protocols) => chooseSubprotocol(protocols) || false,
    })
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, accept: Accept): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => bind(ws, accept(new WsSocket(ws))))
  }

  close(): void {
    this.#wss.close()
  }
}

/** Refuse an upgrade with an HTTP status and a JSON body, before any WebSocket exists. */
export function rejectUpgrade(socket: Duplex, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return
  const r = refusal(status, code, message)
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  socket.end(
    `HTTP/1.1 ${r.status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(r.body)}\r\n${extra}\r\n${r.body}`,
  )
  // A client that never reads would keep the socket; the response is tiny, so a second is plenty.
  setTimeout(() => socket.destroy(), 1000).unref()
}
