// An in-memory WebSocket for fake-timer tests: no I/O, so node:test's mock timers control every
// delay the client takes. The test plays the server by calling open()/receive()/serverClose().
import { afterEach, beforeEach, mock } from 'node:test'
import { jsonCodec, type ClientMessage, type ConnectionLimits, type ServerMessage } from '@holdfast/protocol'
import type { WebSocketLike } from '../../src/options.js'

const textDecoder = new TextDecoder()

export class FakeSocket implements WebSocketLike {
  static instances: FakeSocket[] = []

  static reset(): void {
    FakeSocket.instances = []
  }

  static get last(): FakeSocket {
    const s = FakeSocket.instances.at(-1)
    if (s === undefined) throw new Error('no socket was created')
    return s
  }

  readyState = 0
  protocol = ''
  binaryType = 'blob'
  onopen: ((ev: never) => unknown) | null = null
  onmessage: ((ev: never) => unknown) | null = null
  onclose: ((ev: never) => unknown) | null = null
  onerror: ((ev: never) => unknown) | null = null
  /** Every message the client sent, decoded. */
  readonly sent: ClientMessage[] = []
  /** Number of frames (a batch counts once). */
  frames = 0
  closedWith: { code: number | undefined; reason: string | undefined } | undefined
  terminated = false

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeSocket.instances.push(this)
  }

  send(data: string | Uint8Array): void {
    if (this.readyState !== 1) throw new Error(`send in readyState ${this.readyState}`)
    if (typeof data !== 'string') throw new Error('JSON frames must be text')
    this.frames++
    this.sent.push(...jsonCodec.decodeClient(data))
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason }
    this.readyState = 3
  }

  terminate(): void {
    this.terminated = true
    this.readyState = 3
  }

  // ------------------------------------------------------------ the test's side

  open(protocol = 'holdfast.v1.json'): void {
    this.readyState = 1
    this.protocol = protocol
    ;(this.onopen as ((ev: object) => void) | null)?.({})
  }

  receive(...msgs: ServerMessage[]): void {
    const frame = textDecoder.decode(jsonCodec.frame(msgs.map((m) => jsonCodec.encode(m))))
    ;(this.onmessage as ((ev: { data: string }) => void) | null)?.({ data: frame })
  }

  /** The connection ends (server close, or a network failure with 1006). */
  serverClose(code: number, reason = ''): void {
    this.readyState = 3
    ;(this.onclose as ((ev: { code: number; reason: string }) => void) | null)?.({ code, reason })
  }

  /** The last command of a type the client sent. */
  lastOf<T extends ClientMessage['type']>(type: T): Extract<ClientMessage, { type: T }> {
    for (let i = this.sent.length - 1; i >= 0; i--) {
      const m = this.sent[i] as ClientMessage
      if (m.type === type) return m as Extract<ClientMessage, { type: T }>
    }
    throw new Error(`no ${type} was sent (sent: ${this.sent.map((m) => m.type).join(', ')})`)
  }

  allOf<T extends ClientMessage['type']>(type: T): Array<Extract<ClientMessage, { type: T }>> {
    return this.sent.filter((m) => m.type === type) as Array<Extract<ClientMessage, { type: T }>>
  }

  /** Open and answer the connect command. */
  async accept(result: { ping?: number; expiresIn?: number; session?: string; limits?: ConnectionLimits } = {}): Promise<void> {
    this.open()
    await microtasks()
    const connect = this.lastOf('connect')
    this.receive({
      id: connect.id,
      result: {
        client: 'c1',
        session: { id: result.session ?? 's1', token: 'st1' },
        resumed: connect.session !== undefined,
        version: 1,
        node: 'n1',
        ping: result.ping ?? 25_000,
        ...(result.expiresIn === undefined ? {} : { expiresIn: result.expiresIn }),
        ...(result.limits === undefined ? {} : { limits: result.limits }),
      },
    })
    await microtasks()
  }
}

/** Let queued microtasks (the client's batched writes, promise continuations) run. */
export async function microtasks(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve()
}

/**
 * For the tests of a file that drive the client over FakeSockets: every test starts at t=0 on
 * mock timers (setTimeout, Date), with Math.random pinned to 0.5 (backoff jitter in the middle),
 * and no sockets from the test before; timers and mocks are restored after it.
 */
export function useFakeClock(): void {
  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
    mock.method(Math, 'random', () => 0.5)
    FakeSocket.reset()
  })
  afterEach(() => {
    mock.timers.reset()
    mock.restoreAll()
  })
}
