import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer } from 'ws'
import { chooseSubprotocol, refusal, type Accept, type TransportSink, type TransportSocket } from './transport.js'

export interface WsTransportOptions {
  /** Largest inbound frame, in bytes; a bigger one closes the connection with 1009. */
  maxFrameBytes: number
  compression: boolean
}

const BINARY = { binary: true } as const
const TEXT = { binary: false } as const
const OPEN = WebSocket.OPEN

/**
 * The RFC 6455 frame of one unmasked, unfragmented server message: header and payload in one
 * buffer, so it goes to the kernel in one write. Written here because `ws` frames every `send`
 * anew, per socket; a publication fanned out to thousands of sockets is framed once instead.
 */
function frameOf(data: Uint8Array, binary: boolean): Buffer {
  const n = data.byteLength
  const frame = Buffer.allocUnsafe(headerBytes(n) + n)
  frame.set(data, writeHeader(frame, n, binary))
  return frame
}

function headerBytes(n: number): number {
  return n < 126 ? 2 : n < 65_536 ? 4 : 10
}

/** Write the header of an `n`-byte message at the start of `frame`; returns its length. */
function writeHeader(frame: Buffer, n: number, binary: boolean): number {
  const head = headerBytes(n)
  frame[0] = binary ? 0x82 : 0x81 // FIN + opcode
  if (head === 2) frame[1] = n
  else if (head === 4) {
    frame[1] = 126
    frame.writeUInt16BE(n, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(n / 2 ** 32), 2)
    frame.writeUInt32BE(n >>> 0, 6)
  }
  return head
}

/**
 * The last message framed, by identity: the flush writes the same publication bytes to every
 * subscriber one after the other, so one entry frames a fan-out once.
 */
let lastData: Uint8Array | undefined
let lastBinary = false
let lastFrame: Buffer | undefined

function framed(data: Uint8Array, binary: boolean): Buffer {
  if (data !== lastData || binary !== lastBinary || lastFrame === undefined) {
    lastFrame = frameOf(data, binary)
    lastData = data
    lastBinary = binary
  }
  return lastFrame
}

/** What this module reads of a `ws` socket's internals (ws 8): its net.Socket and its frame reader. */
interface WsInternals {
  _socket: Duplex | null
  _receiver: { _buffers: Buffer[] } | undefined
}

/**
 * Node caches a socket's peer address (`_peername`, an object with the address, family and port)
 * on the first read of `remoteAddress`, for the life of the socket. The gateway reads it once, at
 * the upgrade, and keeps the address string itself: the cache goes (about 60 bytes a connection).
 * A later read of `remoteAddress` asks the kernel again.
 */
function forgetPeerAddress(socket: Duplex): void {
  if ((socket as { _peername?: unknown })._peername !== undefined) (socket as { _peername?: unknown })._peername = undefined
}

/**
 * A `ws` socket that is also the gateway's TransportSocket, and hands its events to its sink
 * without listeners: `ws` creates it (the server's `WebSocket` option), so a connection costs no
 * adapter object, no listener entries and no closures beside the socket itself.
 */
class HoldfastWebSocket extends WebSocket implements TransportSocket {
  /** The connection, set as soon as `ws` completed the upgrade (before any frame is read). */
  sink: TransportSink | undefined = undefined
  /**
   * The TCP socket to write pre-framed messages to, when nothing else may sit between `ws`'s
   * sender and the socket (no permessage-deflate, whose sender queues while compressing);
   * undefined otherwise. Everything still goes to one socket in call order, `ws`'s own control
   * frames (pong, close) included.
   */
  raw: Duplex | undefined = undefined

  bind(sink: TransportSink): void {
    this.sink = sink
    this.raw = this.extensions === '' ? ((this as unknown as WsInternals)._socket ?? undefined) : undefined
  }

  write(data: Uint8Array, binary: boolean): void {
    const raw = this.raw
    if (raw !== undefined && this.readyState === OPEN) raw.write(framed(data, binary))
    else this.send(data, binary ? BINARY : TEXT)
  }

  /** The header, then each piece, corked: one `writev` to the kernel, no copy of the pieces. */
  writePieces(parts: readonly Uint8Array[], byteLength: number, binary: boolean): void {
    const raw = this.raw
    if (raw === undefined || this.readyState !== OPEN) {
      this.send(Buffer.concat(parts, byteLength), binary ? BINARY : TEXT)
      return
    }
    const header = Buffer.allocUnsafe(headerBytes(byteLength))
    writeHeader(header, byteLength, binary)
    raw.cork()
    raw.write(header)
    for (const p of parts) raw.write(p)
    raw.uncork()
  }

  /**
   * `ws`'s frame reader keeps the array that incoming chunks pass through, grown by the first one
   * to room for 17 (about 150 bytes) and never shrunk: when it is empty, an idle socket gets a
   * new, empty one.
   */
  compact(): void {
    const receiver = (this as unknown as WsInternals)._receiver
    if (receiver !== undefined && receiver._buffers.length === 0) receiver._buffers = []
  }

  /**
   * `ws` reports everything through emit: messages and the close go straight to the sink.
   * Errors (bad frames, too big) are followed by 'close' with the right code: nothing to do (and
   * with no listener, emitting 'error' would throw). Other events have no listeners.
   */
  override emit(event: string | symbol, a?: unknown, b?: unknown): boolean {
    if (event === 'message') this.sink?.onFrame(a as Buffer, b as boolean)
    else if (event === 'close') this.sink?.onClose(a as number, (b as Buffer).toString())
    else if (event !== 'error') return super.emit(event, a, b)
    return true
  }
}

/**
 * The `ws` transport. It only upgrades; every decision (limits, auth, origin) is made by the
 * gateway before `upgrade` is called, so refused requests never become WebSockets.
 */
export class WsTransport {
  readonly #wss: WebSocketServer

  constructor(opts: WsTransportOptions) {
    this.#wss = new WebSocketServer({
      WebSocket: HoldfastWebSocket,
      noServer: true,
      clientTracking: false,
      maxPayload: opts.maxFrameBytes,
      perMessageDeflate: opts.compression,
      // Prefer MessagePack when offered; otherwise JSON (also when no subprotocol is offered).
      handleProtocols: (protocols) => chooseSubprotocol(protocols) || false,
    })
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, accept: Accept): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const hws = ws as HoldfastWebSocket
      hws.bind(accept(hws))
      forgetPeerAddress(socket)
    })
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
