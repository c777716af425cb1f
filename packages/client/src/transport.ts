import { batches, HoldfastError, jsonClientCodec } from '@holdfast/protocol/internal'
import type { ClientMessage, FrameData, ServerMessage } from '@holdfast/protocol'
import type { ClientCodec } from '@holdfast/protocol/internal'
import type { WebSocketConstructor, WebSocketLike } from './options.js'

const OPEN = 1
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

/** What a carrier reports to its transport. */
export interface CarrierEvents {
  /** Open, speaking `protocol` (the negotiated subprotocol; '' for none, which means JSON). */
  open(protocol: string): void
  data(data: FrameData): void
  close(code: number, reason: string): void
}

/**
 * What moves frames: a WebSocket, or the HTTP-streaming fallback (http-stream.ts). It sends what it
 * is given, in order, and reports through `CarrierEvents`; framing and codecs are the transport's.
 */
export interface Carrier {
  write(frame: Uint8Array, binary: boolean): void
  /** `hard`: drop without a closing handshake where the carrier can (a half-open peer). */
  close(code: number, reason: string, hard: boolean): void
}

/** Opens a carrier to `url` offering `subprotocol`. Throws what the carrier's constructor throws. */
export type CarrierFactory = (url: string, subprotocol: string, events: CarrierEvents) => Carrier

const noop = (): void => {}

/** A WebSocket as a carrier: `ws` in Node, the browser's own elsewhere. */
export function webSocketCarrier(ctor: WebSocketConstructor): CarrierFactory {
  return (url, subprotocol, events) => {
    const socket: WebSocketLike = new ctor(url, subprotocol)
    socket.binaryType = 'arraybuffer'
    socket.onopen = () => events.open(socket.protocol)
    socket.onmessage = (ev: { data: unknown }) => events.data(ev.data as FrameData)
    socket.onclose = (ev: { code: number; reason: string }) => events.close(ev.code, ev.reason)
    // A close event always follows an error event; the close carries what matters.
    socket.onerror = noop
    return {
      write(frame, binary) {
        // Not open (yet, or any more): its close event requeues whatever awaited an ack.
        if (socket.readyState !== OPEN) return
        try {
          socket.send(binary ? frame : textDecoder.decode(frame))
        } catch {
          // Closing: as above.
        }
      },
      close(code, reason, hard) {
        socket.onopen = noop
        socket.onmessage = noop
        socket.onclose = noop
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
      },
    }
  }
}

/**
 * One connection's framing over a carrier: commands written in the same tick go out together in
 * one frame (a batch), encoded with the codec the server negotiated. After `close()` the carrier's
 * events are ignored, so a late close of an abandoned one can never disturb the next connection.
 */
export class Transport {
  readonly #carrier: Carrier
  #maxBatch: number
  #codec: ClientCodec
  #pending: Uint8Array[] = []
  #flushScheduled = false
  /** No more events reach the handlers (closed by either side). */
  #done = false
  /** close() was called (the carrier was released). */
  #closed = false

  /** Throws what the carrier throws when it opens (e.g. a malformed URL). */
  constructor(open: CarrierFactory, url: string, requested: ClientCodec, maxBatch: number, handlers: TransportHandlers) {
    this.#maxBatch = maxBatch
    this.#codec = requested
    this.#carrier = open(url, requested.subprotocol, {
      open: (protocol) => {
        if (this.#done) return
        // The server speaks what it negotiated; no subprotocol means JSON.
        this.#codec = protocol === requested.subprotocol ? requested : jsonClientCodec
        handlers.open()
        this.#flush()
      },
      data: (data) => {
        if (this.#done) return
        handlers.heard()
        let msgs: ServerMessage[]
        try {
          msgs = this.#codec.decodeServer(data)
        } catch (err) {
          handlers.malformed(err instanceof HoldfastError ? err : new HoldfastError('bad_request', 'undecodable frame', { cause: err }))
          return
        }
        handlers.messages(msgs)
      },
      close: (code, reason) => {
        if (this.#done) return
        this.#done = true
        handlers.close(code, reason)
      },
    })
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

  /** Stop using the carrier; `hard` drops it without a closing handshake where it can. */
  close(code: number, reason: string, hard = false): void {
    if (this.#closed) return
    this.#closed = true
    this.#done = true
    this.#pending = []
    this.#carrier.close(code, reason, hard)
  }

  #flush = (): void => {
    this.#flushScheduled = false
    const parts = this.#pending
    this.#pending = []
    if (this.#done || parts.length === 0) return
    for (const batch of batches(parts, this.#maxBatch)) this.#carrier.write(this.#codec.frame(batch), this.#codec.binary)
  }
}
