import type { Carrier, CarrierEvents, CarrierFactory } from './transport.js'
import type { WebSocketConstructor } from './options.js'

// The HTTP-streaming fallback (docs/protocol.md, "HTTP streaming"): a carrier for the same
// protocol frames as a WebSocket, down a streamed POST response and up one POST per frame. Loaded
// only when a WebSocket could not connect; it imports nothing at run time.

const OPEN = 1
const FRAME = 2
const CLOSE = 3
const HEADER_BYTES = 5
/** A record larger than this is not a frame any server sends (its frames are bounded): stop. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024
/** Offered besides the requested subprotocol: the server's fallback when it does not speak that one. */
const JSON_SUBPROTOCOL = 'holdfast.v1.json'

const textDecoder = new TextDecoder()
/** The first WebSocket probe after connecting over the fallback. */
const FIRST_PROBE_MS = 1000
/** Longest pause between WebSocket probes while on the fallback. */
const MAX_PROBE_DELAY_MS = 600_000

/** `ws://host/ws` → `http://host/ws/stream` (and wss → https): the same node, the same path. */
export function streamUrl(wsUrl: string): string {
  const u = new URL(wsUrl)
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:'
  u.pathname = `${u.pathname.replace(/\/$/, '')}/stream`
  return u.toString()
}

/** The close code an HTTP refusal stands for (what a refused upgrade would have said). */
function closeCodeFor(status: number): number {
  if (status === 401) return 4009
  if (status === 403) return 4010
  if (status === 429 || status === 503) return 4001
  return 1006
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a, 0)
  out.set(b, a.byteLength)
  return out
}

/** The HTTP-streaming carrier: pass it to `Transport` in place of a WebSocket. */
export const httpStreamCarrier: CarrierFactory = (wsUrl: string, subprotocol: string, events: CarrierEvents): Carrier => new HttpStream(wsUrl, subprotocol, events)

class HttpStream implements Carrier {
  readonly #events: CarrierEvents
  readonly #url: string
  readonly #abort = new AbortController()
  /** The uplink URL, once the server opened the stream. */
  #up: string | undefined
  /** Frames waiting for the POST in flight: one at a time, so they arrive in order. */
  #queue: Uint8Array[] = []
  #sending = false
  #done = false

  constructor(wsUrl: string, subprotocol: string, events: CarrierEvents) {
    this.#events = events
    this.#url = streamUrl(wsUrl)
    const offered = subprotocol === JSON_SUBPROTOCOL ? subprotocol : `${subprotocol},${JSON_SUBPROTOCOL}`
    fetch(`${this.#url}?protocol=${encodeURIComponent(offered)}`, { method: 'POST', cache: 'no-store', signal: this.#abort.signal })
      .then(async (res) => {
        if (!res.ok || res.body === null) {
          const body = await res.text().catch(() => '')
          this.#end(closeCodeFor(res.status), `HTTP stream refused: ${res.status} ${body.slice(0, 200)}`)
          return
        }
        await this.#read(res.body.getReader())
      })
      .catch((err: unknown) => this.#end(1006, `HTTP stream failed: ${err instanceof Error ? err.message : String(err)}`))
  }

  async #read(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    let buf: Uint8Array = new Uint8Array(0)
    for (;;) {
      const { done, value } = await reader.read()
      if (this.#done) return
      if (done) {
        this.#end(1006, 'HTTP stream ended without a close')
        return
      }
      buf = buf.byteLength === 0 ? value : concat(buf, value)
      let at = 0
      while (buf.byteLength - at >= HEADER_BYTES) {
        const view = new DataView(buf.buffer, buf.byteOffset + at)
        const length = view.getUint32(1)
        if (length > MAX_RECORD_BYTES) {
          this.#end(1002, `HTTP stream record of ${length} bytes`)
          return
        }
        if (buf.byteLength - at - HEADER_BYTES < length) break
        const type = view.getUint8(0)
        const payload = buf.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length)
        at += HEADER_BYTES + length
        this.#record(type, payload)
        if (this.#done) return
      }
      buf = at === buf.byteLength ? new Uint8Array(0) : buf.slice(at)
    }
  }

  #record(type: number, payload: Uint8Array): void {
    if (type === FRAME) {
      this.#events.data(payload)
      return
    }
    let info: { id?: unknown; protocol?: unknown; code?: unknown; reason?: unknown }
    try {
      info = JSON.parse(textDecoder.decode(payload)) as typeof info
    } catch {
      this.#end(1002, 'malformed HTTP stream record')
      return
    }
    if (type === OPEN && typeof info.id === 'string') {
      this.#up = `${this.#url}/${encodeURIComponent(info.id)}`
      this.#events.open(typeof info.protocol === 'string' ? info.protocol : '')
      this.#post()
    } else if (type === CLOSE) {
      this.#end(typeof info.code === 'number' ? info.code : 1006, typeof info.reason === 'string' ? info.reason : '')
    }
  }

  write(frame: Uint8Array): void {
    if (this.#done) return
    this.#queue.push(frame)
    this.#post()
  }

  #post(): void {
    const up = this.#up
    const frame = this.#queue[0]
    if (this.#done || this.#sending || up === undefined || frame === undefined) return
    this.#queue.shift()
    this.#sending = true
    // text/plain even for MessagePack: a CORS "simple request" needs no preflight.
    fetch(up, { method: 'POST', body: frame as BodyInit, headers: { 'content-type': 'text/plain' }, signal: this.#abort.signal })
      .then((res) => {
        this.#sending = false
        if (!res.ok) this.#end(res.status === 413 ? 1009 : 1006, `HTTP stream frame refused: ${res.status}`)
        else this.#post()
      })
      .catch((err: unknown) => {
        this.#sending = false
        this.#end(1006, `HTTP stream frame failed: ${err instanceof Error ? err.message : String(err)}`)
      })
  }

  #end(code: number, reason: string): void {
    if (this.#done) return
    this.#done = true
    this.#abort.abort()
    this.#events.close(code, reason)
  }

  /** Stop; tell the server (best effort, and it survives a page unload) so it does not wait for a timeout. */
  close(code: number, reason: string): void {
    if (this.#done) return
    this.#done = true
    this.#queue = []
    this.#abort.abort()
    const up = this.#up
    if (up !== undefined) {
      const wire = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000
      fetch(`${up}?close=${wire}&reason=${encodeURIComponent(reason.slice(0, 120))}`, { method: 'POST', keepalive: true }).catch(() => {})
    }
  }
}

/**
 * While on the fallback: does a bare WebSocket to `url` open now? (It is closed at once; the
 * connection moves over only when this says yes.)
 */
export function probeWebSocket(ctor: WebSocketConstructor, url: string, subprotocol: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let probe: InstanceType<WebSocketConstructor>
    // `ws` throws an 'error' nobody listens to: keep a listener for good.
    const ignore = (): void => {}
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      probe.onopen = probe.onclose = null
      if (ok) probe.close(1000, 'probe')
      resolve(ok)
    }
    try {
      probe = new ctor(url, subprotocol)
    } catch {
      resolve(false)
      return
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    probe.onerror = ignore
    probe.onopen = () => done(true)
    probe.onclose = () => done(false)
  })
}

/** Where and how a probe opens its WebSocket. */
export interface ProbeTarget {
  WebSocket: WebSocketConstructor
  url: string
  subprotocol: string
  timeoutMs: number
}

/**
 * While the fallback carries the connection: open a bare WebSocket now and then, and say when one
 * gets through. The first probe comes soon after connecting (a node that was down, not a proxy
 * refusing upgrades, made WebSocket attempts fail too, and its clients should not stay on the
 * fallback once it is back); after that the pause grows from `retryMs`, doubling, to at most ten
 * minutes. The pause is kept across connections until a probe gets through.
 */
export class WebSocketProber {
  readonly #retryMs: number
  #delayMs = 0
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(retryMs: number) {
    this.#retryMs = retryMs
  }

  /** Start probing; `current()` false: the connection moved on, stop quietly. */
  start(target: () => ProbeTarget, current: () => boolean, through: () => void): void {
    this.#delayMs ||= Math.min(FIRST_PROBE_MS, this.#retryMs)
    this.stop()
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      const t = target()
      void probeWebSocket(t.WebSocket, t.url, t.subprotocol, t.timeoutMs).then((ok) => {
        if (!current()) return
        if (ok) {
          this.#delayMs = 0
          through()
          return
        }
        this.#delayMs = this.#delayMs < this.#retryMs ? this.#retryMs : Math.min(this.#delayMs * 2, MAX_PROBE_DELAY_MS)
        this.start(target, current, through)
      })
    }, this.#delayMs)
  }

  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
