import { HoldfastError, jsonClientCodec } from '@holdfast/protocol/internal'
import type { ClientMessage, FrameData, ServerMessage } from '@holdfast/protocol'
import type { ClientCodec } from '@holdfast/protocol/internal'
import type { WebSocketConstructor, WebSocketLike } from './options.js'

const OPEN = 1
/**
 * Most bytes batched into one outgoing frame. The server limits a frame to its max payload plus an
 * envelope (64 KiB by default); one larger message still goes out alone.
 */
const MAX_FRAME_BYTES = 60 * 1024
const textDecoder = new TextDecoder()
const textEncoder = new TextEncoder()

function truncateUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) return text
  let out = text
  while (textEncoder.encode(out).byteLength > maxBytes) out = out.slice(0, -1)
  return out
}

export interface TransportHandlers {
  open(): void
  /** Any frame at all arrived (feeds the heartbeat watchdog before decoding). */
  heard(): void
  messages(msgs: ServerMessage[]): void
  /** The server sent a frame that does not decode. */
  malformed(err: HoldfastError): void
  close(code: number, reason: string): void
}

const noop = (): void => {}

/**
 * One WebSocket and its framing: commands written in the same tick go out together in one frame
 * (a batch), encoded with the codec the server negotiated. After `close()` the socket's events are
 * ignored, so a late `close` of an abandoned socket can never disturb the next connection.
 */
export class Transport {
  readonly #socket: WebSocketLike
  readonly #handlers: TransportHandlers
  #maxBatch: number
  #codec: ClientCodec
  #pending: Uint8Array[] = []
  #flushScheduled = false
  #done = false

  /** Throws what the WebSocket constructor throws (e.g. a malformed URL). */
  constructor(ctor: WebSocketConstructor, url: string, requested: ClientCodec, maxBatch: number, handlers: TransportHandlers) {
    this.#handlers = handlers
    this.#maxBatch = maxBatch
    this.#codec = requested
    const socket = new ctor(url, requested.subprotocol)
    this.#socket = socket
    socket.binaryType = 'arraybuffer'
    socket.onopen = () => {
      if (this.#done) return
      // The server speaks what it negotiated; no subprotocol means JSON.
      this.#codec = socket.protocol === requested.subprotocol ? requested : jsonClientCodec
      handlers.open()
    }
    socket.onmessage = (ev: { data: unknown }) => {
      if (this.#done) return
      handlers.heard()
      let msgs: ServerMessage[]
      try {
        msgs = this.#codec.decodeServer(ev.data as FrameData)
      } catch (err) {
        handlers.malformed(err instanceof HoldfastError ? err : new HoldfastError('bad_request', 'undecodable frame', { cause: err }))
        return
      }
      handlers.messages(msgs)
    }
    socket.onclose = (ev: { code: number; reason: string }) => {
      if (this.#done) return
      this.#done = true
      handlers.close(ev.code, ev.reason)
    }
    // A close event always follows an error event; the close carries what matters.
    socket.onerror = noop
  }

  get codec(): ClientCodec {
    return this.#codec
  }

  /** Lower the batch size to what the server announced it accepts. */
  limitBatch(maxBatch: number): void {
    if (maxBatch >= 1) this.#maxBatch = Math.min(this.#maxBatch, Math.floor(maxBatch))
  }

  /** Queue a message; everything queued in this tick is sent as one frame (or a few, past the batch limits). */
  send(msg: ClientMessage): void {
    if (this.#done) return
    this.#pending.push(this.#codec.encode(msg))
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      queueMicrotask(this.#flush)
    }
  }

  /**
   * Stop using the socket. `hard` terminates it without a closing handshake where the
   * implementation can (`ws`): a half-open peer would otherwise hold the close open for its timeout.
   */
  close(code: number, reason: string, hard = false): void {
    if (this.#done && this.#socket.onclose === noop) return
    this.#done = true
    this.#pending = []
    const socket = this.#socket
    socket.onopen = noop
    socket.onmessage = noop
    socket.onclose = noop
    socket.onerror = noop
    const terminate = (socket as { terminate?: unknown }).terminate
    if (hard && typeof terminate === 'function') {
      terminate.call(socket)
      return
    }
    // Browsers only let a page send 1000 or 3000-4999 and a reason of at most 123 UTF-8 bytes;
    // anything else throws and would leave the socket open.
    const wireCode = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000
    try {
      socket.close(wireCode, truncateUtf8(reason, 123))
    } catch {
      try {
        socket.close()
      } catch {
        // Already closed or failed: nothing left to release.
      }
    }
  }

  #flush = (): void => {
    this.#flushScheduled = false
    const parts = this.#pending
    this.#pending = []
    if (this.#done || this.#socket.readyState !== OPEN || parts.length === 0) return
    let i = 0
    while (i < parts.length) {
      const start = i
      let bytes = 0
      while (i < parts.length && i - start < this.#maxBatch) {
        const size = (parts[i] as Uint8Array).byteLength + 1
        if (i > start && bytes + size > MAX_FRAME_BYTES) break
        bytes += size
        i++
      }
      const frame = this.#codec.frame(parts.slice(start, i))
      try {
        this.#socket.send(this.#codec.binary ? frame : textDecoder.decode(frame))
      } catch {
        // The socket is closing; its close event will requeue whatever awaited an ack.
        return
      }
    }
  }
}
