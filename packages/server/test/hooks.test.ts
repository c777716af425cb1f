import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import {
  ROOT_CONTEXT,
  SpanStatusCode,
  context as otelContext,
  trace,
  type Attributes,
  type Context,
  type ContextManager,
  type Span,
  type SpanAttributeValue,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type Tracer,
} from '@opentelemetry/api'
import { CloseCodes, ErrorCodes, HoldfastError } from '@holdfast/protocol'
import type { ConnectInfo, ConnectionInfo, DisconnectInfo, HoldfastOptions } from '../src/options.js'
import { parseTraceparent } from '../src/tracing.js'
import { runHook } from '../src/hooks.js'
import { RawClient, expectClosedWith, waitFor, serverPerTest, type TestServer } from './helpers.js'

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_SPAN = '00f067aa0ba902b7'
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_SPAN}-01`

// ---------------------------------------------------------------- a minimal OpenTelemetry Tracer

/** A span that records what the gateway does to it. */
class FakeSpan implements Span {
  readonly attributes: Attributes = {}
  status: SpanStatus = { code: SpanStatusCode.UNSET }
  ended = 0
  exceptions: unknown[] = []
  readonly #ctx: SpanContext

  constructor(
    public name: string,
    readonly options: SpanOptions,
    /** The context the span was started in: its parent. */
    readonly parent: Context,
  ) {
    const parentSc = trace.getSpanContext(parent)
    this.#ctx = { traceId: parentSc?.traceId ?? randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), traceFlags: 1 }
    Object.assign(this.attributes, options.attributes ?? {})
  }

  spanContext(): SpanContext {
    return this.#ctx
  }
  setAttribute(key: string, value: SpanAttributeValue): this {
    this.attributes[key] = value
    return this
  }
  setAttributes(attributes: Attributes): this {
    Object.assign(this.attributes, attributes)
    return this
  }
  addEvent(): this {
    return this
  }
  addLink(): this {
    return this
  }
  addLinks(): this {
    return this
  }
  setStatus(status: SpanStatus): this {
    this.status = status
    return this
  }
  updateName(name: string): this {
    this.name = name
    return this
  }
  end(): void {
    this.ended++
  }
  isRecording(): boolean {
    return this.ended === 0
  }
  recordException(exception: unknown): void {
    this.exceptions.push(exception)
  }
}

/** Implements the API's Tracer interface, nothing more: no SDK involved. */
class FakeTracer implements Tracer {
  readonly spans: FakeSpan[] = []

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = otelContext.active()): Span {
    const span = new FakeSpan(name, options, ctx)
    this.spans.push(span)
    return span
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...args: unknown[]): ReturnType<F> {
    const fn = args.at(-1) as F
    const span = this.startSpan(name, (args.length > 1 ? args[0] : {}) as SpanOptions, (args.length > 2 ? args[1] : otelContext.active()) as Context)
    return otelContext.with(trace.setSpan(otelContext.active(), span), () => fn(span)) as ReturnType<F>
  }

  named(name: string): FakeSpan[] {
    return this.spans.filter((s) => s.name === name)
  }
}

/** A context manager on AsyncLocalStorage, as an SDK would install: lets the test see the active span. */
class AlsContextManager implements ContextManager {
  readonly #als = new AsyncLocalStorage<Context>()
  active(): Context {
    return this.#als.getStore() ?? ROOT_CONTEXT
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.#als.run(ctx, () => fn.call(thisArg, ...args))
  }
  bind<T>(_ctx: Context, target: T): T {
    return target
  }
  enable(): this {
    return this
  }
  disable(): this {
    this.#als.disable()
    return this
  }
}

// ---------------------------------------------------------------- tests

describe('hooks', () => {
  const fx = serverPerTest()
  const start = fx.start
  const client = (url: string, headers?: Record<string, string>): RawClient => fx.client(url, headers === undefined ? {} : { headers })

  const authenticate: HoldfastOptions['authenticate'] = ({ token }) => {
    if (token === 'alice' || token === 'bob') return { user: token, info: { name: token.toUpperCase() } }
    throw new HoldfastError('unauthorized', 'unknown token')
  }

  it('onConnect and onDisconnect hear the connection, the resume, and the close code with its name', async () => {
    const connects: ConnectInfo[] = []
    const disconnects: DisconnectInfo[] = []
    const events: string[] = []
    const s = await start({ authenticate, onConnect: (i) => void connects.push(i), onDisconnect: (i) => void disconnects.push(i) })
    s.gw.on('connect', () => events.push('connect'))
    s.gw.on('disconnect', () => events.push('disconnect'))

    const a = client(s.url)
    const first = await a.connect({ token: 'alice' })
    assert.equal(connects.length, 1)
    assert.deepEqual(connects[0], { client: first.client, user: 'alice', session: first.session.id, ip: '127.0.0.1', info: { name: 'ALICE' }, resumed: false })

    // The same session resumed on a new connection: the old one is taken over.
    const a2 = client(s.url)
    const second = await a2.connect({ token: 'alice', session: first.session })
    assert.equal(connects[1]?.resumed, true)
    assert.equal(connects[1]?.session, first.session.id)
    await expectClosedWith(a, CloseCodes.taken_over.code)
    await waitFor(() => disconnects.length === 1, 5000, 'the takeover disconnect')
    assert.deepEqual(disconnects[0], {
      client: first.client,
      user: 'alice',
      session: first.session.id,
      ip: '127.0.0.1',
      info: { name: 'ALICE' },
      code: CloseCodes.taken_over.code,
      codeName: 'taken_over',
      reason: 'session resumed by a newer connection',
    })

    await s.gw.disconnect({ user: 'alice', code: 'kicked', reason: 'banned for a day' })
    await expectClosedWith(a2, CloseCodes.kicked.code)
    await waitFor(() => disconnects.length === 2, 5000, 'the kick')
    assert.equal(disconnects[1]?.client, second.client)
    assert.equal(disconnects[1]?.codeName, 'kicked')
    assert.equal(disconnects[1]?.reason, 'banned for a day')

    // A client that just goes away: 1006, abnormal.
    const b = client(s.url)
    await b.connect({ token: 'bob' })
    b.close()
    await waitFor(() => disconnects.length === 3, 5000, 'the drop')
    assert.deepEqual([disconnects[2]?.user, disconnects[2]?.code, disconnects[2]?.codeName], ['bob', 1006, 'abnormal'])

    // Never connected (refused token): no hooks.
    const refused = client(s.url)
    await refused.opened()
    refused.sendRaw({ id: 1, type: 'connect', version: 1, token: 'mallory' })
    await expectClosedWith(refused, CloseCodes.unauthorized.code)
    await waitFor(() => s.gw.connectionCount === 0, 5000, 'the refused socket to close')
    assert.equal(connects.length, 3)
    assert.equal(disconnects.length, 3)
    // The events still fire next to the hooks.
    assert.equal(events.filter((e) => e === 'connect').length, 3)
    assert.ok(events.filter((e) => e === 'disconnect').length >= 3)
  })

  it('onSubscribe hears client and server-side subscriptions, not refused ones', async () => {
    const subs: Array<[ConnectionInfo, string]> = []
    const s = await start({
      authenticate,
      canSubscribe: ({ channel }) => channel !== 'forbidden',
      onSubscribe: (info, channel) => void subs.push([info, channel]),
    })
    const c = client(s.url)
    const { client: id } = await c.connect({ token: 'bob' })
    await c.call({ type: 'subscribe', channel: 'news' })
    assert.equal(subs.length, 1)
    assert.deepEqual(subs[0], [{ client: id, user: 'bob', session: subs[0]?.[0].session, ip: '127.0.0.1', info: { name: 'BOB' } }, 'news'])
    await assert.rejects(c.call({ type: 'subscribe', channel: 'forbidden' }))
    await assert.rejects(c.call({ type: 'subscribe', channel: 'news' })) // already subscribed
    assert.equal(subs.length, 1)
    await s.gw.subscribeUser('bob', 'server-side')
    await c.until(() => c.pushes.some((p) => p.type === 'subscribe'))
    await waitFor(() => subs.length === 2, 5000, 'the server-side subscribe hook')
    assert.equal(subs[1]?.[1], 'server-side')
  })

  it('onPublish runs after the publication is stored, once, with the data; not for duplicates, refusals or the server API', async () => {
    const seen: Array<{ info: ConnectionInfo; channel: string; data: unknown; stored: number }> = []
    let s: TestServer
    s = await start({
      authenticate,
      maxPayload: 1024,
      onPublish: (info, channel, data) => {
        // Stored already: history holds it when the hook runs.
        const stored = s.gw.history(channel).then((h) => h.publications.length)
        void stored.then((n) => seen.push({ info, channel, data, stored: n }))
      },
    })
    const c = client(s.url)
    const { client: id } = await c.connect({ token: 'alice' })
    await c.call({ type: 'publish', channel: 'chat', data: { text: 'hi' }, msgId: 'a' })
    await c.call({ type: 'publish', channel: 'chat', data: { text: 'hi' }, msgId: 'a' }) // duplicate
    await assert.rejects(c.call({ type: 'publish', channel: 'chat', data: 'x'.repeat(4096), msgId: 'b' }))
    await s.gw.publish('chat', { text: 'from the server' })
    await waitFor(() => seen.length >= 1)
    await new Promise((r) => setTimeout(r, 50)) // give a wrong second call the chance to show up
    assert.equal(seen.length, 1)
    assert.equal(seen[0]?.info.client, id)
    assert.equal(seen[0]?.channel, 'chat')
    assert.deepEqual(seen[0]?.data, { text: 'hi' })
    assert.equal(seen[0]?.stored, 1)
  })

  it('a hook that throws or rejects is logged and counted, and the gateway carries on', async () => {
    let pending: Promise<void> | undefined
    const s = await start({
      authenticate,
      onConnect: () => {
        throw new Error('sync failure')
      },
      onSubscribe: () => Promise.reject(new Error('async failure')),
      // Never settles: the gateway must not wait for it.
      onPublish: () => (pending = new Promise<void>(() => {})),
      onDisconnect: () => {
        throw new TypeError('also broken')
      },
    })
    const c = client(s.url)
    await c.connect({ token: 'alice' })
    await c.call({ type: 'subscribe', channel: 'h' })
    const ack = await c.call<{ offset: number }>({ type: 'publish', channel: 'h', data: 1, msgId: 'p' })
    assert.equal(ack.offset, 1)
    assert.ok(pending !== undefined)
    await c.until(() => c.pubs('h').length === 1)
    c.close()
    await waitFor(() => s.gw.counters.get('hook_errors', 'onDisconnect') === 1, 5000, 'the onDisconnect failure')
    assert.equal(s.gw.counters.get('hook_errors', 'onConnect'), 1)
    assert.equal(s.gw.counters.get('hook_errors', 'onSubscribe'), 1)
    assert.equal(s.gw.counters.get('hook_errors', 'onPublish'), 0)
    // Still serving.
    const d = client(s.url)
    await d.connect({ token: 'bob' })
    assert.equal(s.gw.connectionCount, 1)
  })

  it('runHook reports sync throws and rejections, and ignores what resolves', async () => {
    const errors: Array<[string, unknown]> = []
    const onError = (name: string, err: unknown): void => void errors.push([name, err])
    runHook('a', () => {
      throw new Error('x')
    }, onError)
    runHook('b', () => Promise.reject(new Error('y')), onError)
    runHook('c', () => Promise.resolve(1), onError)
    runHook('d', () => 42, onError)
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(errors.map(([n, e]) => [n, (e as Error).message]), [['a', 'x'], ['b', 'y']])
  })

  it('rejects hooks and tracers that are not what they claim', async () => {
    const { Gateway } = await import('../src/gateway.js')
    assert.throws(() => new Gateway({ logger: false, onConnect: 'yes' as unknown as () => void }), /option "onConnect" must be a function/)
    assert.throws(() => new Gateway({ logger: false, onPublish: {} as unknown as () => void }), /option "onPublish" must be a function/)
    assert.throws(() => new Gateway({ logger: false, tracer: {} as unknown as Tracer }), /option "tracer"/)
    assert.throws(() => new Gateway({ logger: false, processMetrics: 1 as unknown as boolean }), /option "processMetrics"/)
  })
})

describe('OpenTelemetry spans', () => {
  const fx = serverPerTest()
  const client = (url: string, headers?: Record<string, string>): RawClient => fx.client(url, headers === undefined ? {} : { headers })

  it('connect, subscribe, publish and rpc spans: names, attributes, parents, the traceparent trace, all ended', async () => {
    const tracer = new FakeTracer()
    const manager = new AlsContextManager()
    assert.ok(otelContext.setGlobalContextManager(manager), 'no other context manager is installed')
    let activeInRpc: Span | undefined
    try {
      const s = await fx.start({ tracer })
      s.gw.onRpc('whoami', () => {
        activeInRpc = trace.getActiveSpan()
        return 'me'
      })
      s.gw.onRpc('fail', () => {
        throw new HoldfastError('permission_denied', 'no')
      })
      const c = client(s.url, { traceparent: TRACEPARENT })
      const { client: id } = await c.connect()

      const [connect] = tracer.named('holdfast.connect')
      assert.ok(connect !== undefined)
      assert.equal(connect.ended, 1)
      assert.equal(connect.status.code, SpanStatusCode.UNSET)
      assert.equal(connect.attributes['holdfast.client'], id)
      assert.equal(connect.attributes['holdfast.resumed'], false)
      // Its parent is the upgrade's traceparent, as a remote span context.
      const parent = trace.getSpanContext(connect.parent)
      assert.deepEqual(parent, { traceId: TRACE_ID, spanId: PARENT_SPAN, traceFlags: 1, isRemote: true })
      assert.equal(connect.spanContext().traceId, TRACE_ID)

      const first = await c.call<{ epoch: string; offset: number }>({ type: 'subscribe', channel: 'otel' })
      await c.call({ type: 'publish', channel: 'otel', data: 'secret data', msgId: 'm1' })
      await c.call({ type: 'unsubscribe', channel: 'otel' })
      await c.call({ type: 'subscribe', channel: 'otel', recover: { offset: first.offset, epoch: first.epoch } })
      assert.equal(await c.call<{ data: string }>({ type: 'rpc', method: 'whoami', data: null, msgId: 'r1' }).then((r) => r.data), 'me')
      await assert.rejects(c.call({ type: 'rpc', method: 'fail', data: null, msgId: 'r2' }))
      await s.gw.publish('otel', 'from the api')

      const subscribes = tracer.named('holdfast.subscribe')
      assert.equal(subscribes.length, 2)
      assert.deepEqual(
        subscribes.map((sp) => [sp.attributes['holdfast.channel'], sp.attributes['holdfast.was_recovering'], sp.attributes['holdfast.recovered']]),
        [
          ['otel', false, false],
          ['otel', true, true],
        ],
      )
      const publishes = tracer.named('holdfast.publish')
      assert.equal(publishes.length, 2)
      assert.deepEqual(publishes.map((sp) => [sp.attributes['holdfast.source'], sp.attributes['holdfast.offset'], sp.attributes['holdfast.duplicate']]), [
        ['client', 1, false],
        ['api', 2, false],
      ])
      assert.ok(!Object.values(publishes[0]?.attributes ?? {}).includes('secret data'), 'no payload in span attributes')
      const rpcs = tracer.named('holdfast.rpc')
      assert.deepEqual(rpcs.map((sp) => [sp.attributes['holdfast.rpc.method'], sp.status.code]), [
        ['whoami', SpanStatusCode.UNSET],
        ['fail', SpanStatusCode.ERROR],
      ])
      assert.equal(rpcs[1]?.attributes['holdfast.error'], 'permission_denied')
      // The handler ran with the rpc span active, so the app's own spans nest under it.
      assert.equal(activeInRpc, rpcs[0])

      // The connection's spans are children of its connect span, in the traceparent's trace.
      for (const sp of [...subscribes, publishes[0] as FakeSpan, ...rpcs]) {
        assert.equal(trace.getSpan(sp.parent), connect, `${sp.name} is a child of connect`)
        assert.equal(sp.spanContext().traceId, TRACE_ID)
      }
      // Unsubscribe, ping and the like get no span; every span started was ended exactly once.
      assert.deepEqual([...new Set(tracer.spans.map((sp) => sp.name))].sort(), ['holdfast.connect', 'holdfast.publish', 'holdfast.rpc', 'holdfast.subscribe'])
      for (const sp of tracer.spans) assert.equal(sp.ended, 1, `${sp.name} ended once`)
    } finally {
      otelContext.disable()
    }
  })

  it('without a traceparent the connect span starts the trace, and the log trace id is its trace id', async () => {
    const tracer = new FakeTracer()
    const srv = await fx.start({ tracer })
    const c = client(srv.url)
    await c.connect()
    const [connect] = tracer.named('holdfast.connect')
    assert.ok(connect !== undefined)
    assert.equal(trace.getSpanContext(connect.parent), undefined, 'a root span')
    const conn = [...srv.gw.connections][0]
    assert.equal(conn?.traceId, connect.spanContext().traceId)
  })

  it('a handshake that fails ends the connect span with an error and the close code name', async () => {
    const tracer = new FakeTracer()
    const srv = await fx.start({ tracer, authenticate: () => Promise.reject(new HoldfastError('unauthorized', 'no')) })
    const c = client(srv.url)
    await c.opened()
    c.sendRaw({ id: 1, type: 'connect', version: 1, token: 't' })
    await expectClosedWith(c, CloseCodes.unauthorized.code)
    await waitFor(() => tracer.named('holdfast.connect')[0]?.ended === 1, 5000, 'the connect span to end')
    const [connect] = tracer.named('holdfast.connect')
    assert.equal(connect?.status.code, SpanStatusCode.ERROR)
    assert.equal(connect?.attributes['holdfast.close_reason'], 'unauthorized')
    assert.equal(connect?.attributes['holdfast.close_code'], CloseCodes.unauthorized.code)
  })

  it("works with the API's no-op tracer (no SDK registered): valid trace ids, nothing breaks", async () => {
    const srv = await fx.start({ tracer: trace.getTracer('holdfast-test') })
    const c = client(srv.url, {})
    await c.connect()
    await c.call({ type: 'subscribe', channel: 'noop' })
    const ack = await c.call<{ offset: number }>({ type: 'publish', channel: 'noop', data: 1, msgId: 'x' })
    assert.equal(ack.offset, 1)
    const conn = [...srv.gw.connections][0]
    assert.match(String(conn?.traceId), /^[0-9a-f]{32}$/)
    assert.notEqual(conn?.traceId, '0'.repeat(32))
    const err = await c.request({ type: 'rpc', method: 'missing', data: null, msgId: 'y' })
    assert.equal((err as { error?: { code: number } }).error?.code, ErrorCodes.method_not_found.code)
  })

  it('parseTraceparent accepts W3C headers and refuses invalid ones', () => {
    assert.deepEqual(parseTraceparent(TRACEPARENT), { traceId: TRACE_ID, spanId: PARENT_SPAN, flags: 1 })
    assert.deepEqual(parseTraceparent([` ${TRACEPARENT} `]), { traceId: TRACE_ID, spanId: PARENT_SPAN, flags: 1 })
    for (const bad of [
      undefined,
      '',
      `00-${'0'.repeat(32)}-${PARENT_SPAN}-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `ff-${TRACE_ID}-${PARENT_SPAN}-01`,
      `00-${TRACE_ID.toUpperCase()}-${PARENT_SPAN}-01`,
      `00-${TRACE_ID}-${PARENT_SPAN}`,
    ]) {
      assert.equal(parseTraceparent(bad), undefined, String(bad))
    }
  })
})
