// What the hub suites (hub-*.test.ts) share: a gateway per test on a FeedControlEngine, and
// protocol-level clients that subscribe.
import { afterEach } from 'node:test'
import { CloseCodes, type Publication } from '@holdfast/protocol'
import type { HoldfastOptions } from '../src/options.js'
import { FeedControlEngine } from './feed-control-engine.js'
import { serverPerTest, type RawClient, type ServerFixture, type TestServer } from './helpers.js'

export interface SubResult {
  epoch: string
  offset: number
  recovered: boolean
  wasRecovering: boolean
  publications: Publication[]
}

/** The close code of a subscriber sent to recovery. */
export const GAP = CloseCodes.insufficient_state.code

export interface HubFixture {
  fx: ServerFixture
  /** A gateway on a fresh FeedControlEngine; both are closed after the test. */
  start(options?: HoldfastOptions): Promise<{ srv: TestServer; engine: FeedControlEngine }>
  /** A connected client, closed after the test. */
  connected(srv: TestServer, opts?: { protocol?: 'json' | 'msgpack'; token?: string }): Promise<{ c: RawClient; id: string }>
  /** A connected client subscribed to `channel`. */
  subscriber(srv: TestServer, channel: string, opts?: { protocol?: 'json' | 'msgpack' }): Promise<{ c: RawClient; id: string; sub: SubResult }>
}

/** Call inside a `describe`. */
export function hubFixture(): HubFixture {
  const fx = serverPerTest()
  const engines: FeedControlEngine[] = []
  // Declared after serverPerTest's hook, so it runs after the servers are closed.
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close()
  })
  const connected: HubFixture['connected'] = async (srv, opts = {}) => {
    const c = fx.client(srv.url, opts.protocol === undefined ? {} : { protocol: opts.protocol })
    const { client: id } = await c.connect(opts.token === undefined ? {} : { token: opts.token })
    return { c, id }
  }
  return {
    fx,
    async start(options = {}) {
      const engine = new FeedControlEngine()
      engines.push(engine)
      return { srv: await fx.start({ engine, ...options }), engine }
    },
    connected,
    async subscriber(srv, channel, opts = {}) {
      const { c, id } = await connected(srv, opts)
      return { c, id, sub: await c.call<SubResult>({ type: 'subscribe', channel }) }
    },
  }
}

/** Offsets of the publications `c` received on `channel`, in order. */
export function offsetsOf(c: RawClient, channel: string): number[] {
  return c.pubs(channel).map((p) => p.offset)
}
