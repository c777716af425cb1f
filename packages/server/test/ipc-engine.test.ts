import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it, type TestContext } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import type { Engine } from '../src/engine/engine.js'
import { EngineHost, IpcEngine, type IpcPort } from '../src/engine/ipc-engine.js'
import { MemoryEngine } from '../src/engine/memory-engine.js'
import { engineContract, RecordingHandler } from './engine-contract.js'
import { FeedControlEngine } from './feed-control-engine.js'
import { Waiters } from '../../../test/support/waiters.js'

/**
 * Two ends of an IPC channel inside one process: messages are structured-cloned and delivered on
 * a later turn, as node's `serialization: 'advanced'` channel does between processes. As in node,
 * `disconnect()` closes the channel for both ends, and a send on a closed channel returns false and
 * emits 'error' on the sender (which, unhandled, ends the process).
 */
function portPair(): [IpcPort & { disconnect(): void }, IpcPort & { disconnect(): void }] {
  const make = (): IpcPort & { disconnect(): void; peer?: EventEmitter; connected: boolean } => {
    const ee = new EventEmitter() as EventEmitter & { connected: boolean; peer?: EventEmitter & { connected: boolean }; disconnect(): void; send(m: unknown): boolean }
    ee.connected = true
    ee.send = (m: unknown) => {
      if (!ee.connected) {
        process.nextTick(() => ee.emit('error', Object.assign(new Error('Channel closed'), { code: 'ERR_IPC_CHANNEL_CLOSED' })))
        return false
      }
      const copy = structuredClone(m)
      setImmediate(() => ee.peer?.emit('message', copy))
      return true
    }
    ee.disconnect = () => {
      ee.connected = false
      if (ee.peer !== undefined) ee.peer.connected = false
    }
    return ee as never
  }
  const a = make()
  const b = make()
  ;(a as { peer?: EventEmitter }).peer = b as unknown as EventEmitter
  ;(b as { peer?: EventEmitter }).peer = a as unknown as EventEmitter
  return [a, b]
}

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_700_000_000_000
  return { now: () => t, advance: (ms) => (t += ms) }
}

engineContract('IpcEngine over an EngineHost(MemoryEngine)', async () => {
  const clock = fakeClock()
  const host = new EngineHost(new MemoryEngine({ now: clock.now }))
  const [primarySide, workerSide] = portPair()
  host.attach(primarySide)
  await host.start()
  const engine = new IpcEngine({ port: workerSide })
  return { engine, advance: clock.advance, cleanup: () => host.close() }
})

describe('EngineHost with several workers', () => {
  it('fans a publication out only to the workers subscribed to its channel, and drops interest on detach', async () => {
    const inner = new MemoryEngine()
    const host = new EngineHost(inner)
    const ports = [portPair(), portPair(), portPair()]
    for (const [p] of ports) host.attach(p)
    await host.start()
    const engines = ports.map(([, w]) => new IpcEngine({ port: w }))
    const recs = engines.map(() => new RecordingHandler())
    await Promise.all(engines.map((e, i) => e.start(recs[i] as RecordingHandler)))
    const [e0, e1, e2] = engines as [IpcEngine, IpcEngine, IpcEngine]
    await e0.subscribe('a')
    await e1.subscribe('a')
    await e2.subscribe('b')
    const stream = { historySize: 10, historyTtlMs: 60_000, streamTtlMs: 600_000 }
    const out = await e2.publish('a', { x: new Uint8Array([1, 2, 3]) }, stream)
    assert.equal(out.offset, 1)
    await recs[0]!.until('worker 0 delivery', () => recs[0]!.pubs.length === 1)
    await recs[1]!.until('worker 1 delivery', () => recs[1]!.pubs.length === 1)
    assert.equal(recs[2]!.pubs.length, 0, 'worker 2 never subscribed to a')
    // Binary data survives the structured-clone hop.
    assert.deepEqual((recs[0]!.pubs[0]!.pub.data as { x: Uint8Array }).x, new Uint8Array([1, 2, 3]))
    // A worker that exits takes its interest with it.
    host.detach(ports[0]![0])
    host.detach(ports[1]![0])
    await e2.publish('a', 2, stream)
    await new Promise((r) => setImmediate(r))
    // Control messages reach every attached worker.
    await e2.publishControl({ type: 'disconnect', user: 'u', code: 4012, reason: 'x', node: 'n' })
    await recs[2]!.until('control', () => recs[2]!.controls.length === 1)
    assert.equal(recs[0]!.pubs.length, 1, 'detached workers get nothing more')
    await host.close()
  })

  it('a call the primary never answers fails fast with engine_unavailable', async () => {
    const [, w] = portPair()
    const engine = new IpcEngine({ port: w, timeoutMs: 100 })
    await engine.start(new RecordingHandler())
    const t0 = Date.now()
    await assert.rejects(engine.publish('a', 1, { historySize: 1, historyTtlMs: 1000, streamTtlMs: 1000 }), (e: Error & { code?: string }) => e.code === 'engine_unavailable')
    assert.ok(Date.now() - t0 < 1000)
    w.disconnect()
    assert.equal(engine.isReady(), false)
    await assert.rejects(engine.nodes(), (e: Error & { code?: string }) => e.code === 'engine_unavailable')
  })
})

/** Records the engine's state changes too. */
class StateHandler extends RecordingHandler {
  readonly states: boolean[] = []
  readonly #waiters = new Waiters()

  onStateChange(ready: boolean): void {
    this.states.push(ready)
    this.#waiters.notify()
  }

  untilStates(n: number): Promise<void> {
    return this.#waiters.until(() => this.states.length >= n, 5000, () => `timed out waiting for ${n} state changes, got ${JSON.stringify(this.states)}`)
  }
}

interface Worker {
  engine: IpcEngine
  rec: StateHandler
  /** The primary's end of this worker's channel. */
  primarySide: IpcPort & { disconnect(): void }
  /** The worker's end. */
  workerSide: IpcPort & { disconnect(): void }
  host: EngineHost
}

/** A host over `inner` (not started: the first request starts it), closed after the test, with `n` workers on it. */
async function hosted(t: TestContext, inner: Engine, n: number, timeoutMs = 5000): Promise<Worker[]> {
  const host = new EngineHost(inner)
  t.after(() => host.close())
  const out: Worker[] = []
  for (let i = 0; i < n; i++) {
    const [primarySide, workerSide] = portPair()
    host.attach(primarySide)
    const engine = new IpcEngine({ port: workerSide, timeoutMs })
    const rec = new StateHandler()
    await engine.start(rec)
    out.push({ engine, rec, primarySide, workerSide, host })
  }
  return out
}

/** The next message of ours that `port` receives. */
function nextMessage(port: IpcPort, hf: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${hf} message within 5 s`)), 5000)
    const listener = (m: unknown): void => {
      if (typeof m !== 'object' || m === null || (m as { hf?: unknown }).hf !== hf) return
      clearTimeout(timer)
      port.off('message', listener)
      resolve(m as Record<string, unknown>)
    }
    port.on('message', listener)
  })
}

/** One turn of the channel: whatever was sent before has been delivered and handled. */
async function turn(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
}

const STREAM = { historySize: 10, historyTtlMs: 60_000, streamTtlMs: 600_000 }

const isCode =
  (code: string) =>
  (e: unknown): boolean =>
    e instanceof HoldfastError && e.code === code

describe('EngineHost: what a worker may ask', () => {
  it('refuses a request for anything but an engine call (close, start) with bad_request, and keeps serving', async (t) => {
    const [w] = await hosted(t, new MemoryEngine(), 1)
    for (const [id, op] of [[1, 'close'], [2, 'start'], [3, 'constructor']] as const) {
      const answer = nextMessage(w!.workerSide, 'res')
      w!.workerSide.send({ hf: 'req', id: 1000 + id, op, args: [] })
      const res = await answer
      assert.equal(res['ok'], false, op)
      assert.equal(res['code'], 'bad_request', op)
    }
    assert.equal((await w!.engine.publish('a', 1, STREAM)).offset, 1, 'the engine was not closed')
  })

  it('starts its engine on the first request when the primary did not', async (t) => {
    const [w0, w1] = await hosted(t, new MemoryEngine(), 2)
    await w0!.engine.subscribe('a')
    await w1!.engine.publish('a', 'x', STREAM)
    await w0!.rec.until('the live feed', () => w0!.rec.pubs.length === 1)
  })

  it("passes an engine's refusal on with its code, message and whether it is temporary", async (t) => {
    const [w] = await hosted(t, new MemoryEngine({ maxStreams: 1 }), 1)
    await w!.engine.publish('a', 1, STREAM)
    const refused = await w!.engine.publish('b', 1, STREAM).then(
      () => assert.fail('a second stream is over the budget'),
      (e: unknown) => e,
    )
    assert.ok(refused instanceof HoldfastError)
    assert.equal(refused.code, 'limit_exceeded')
    assert.equal(refused.temporary, true, 'the budget frees up: the client may retry')
    assert.match(refused.message, /most channel streams/)
    await assert.rejects(w!.engine.history('a', { stream: STREAM, limit: -1 }), (e: unknown) => isCode('bad_request')(e) && (e as HoldfastError).temporary === false)
  })

  it('reports anything else an engine throws as internal, with its text', async (t) => {
    const inner = new MemoryEngine()
    inner.nodes = () => Promise.reject(new Error('disk on fire'))
    inner.registerNode = () => Promise.reject('not an Error')
    const [w] = await hosted(t, inner, 1)
    await assert.rejects(w!.engine.nodes(), (e: unknown) => isCode('internal')(e) && (e as Error).message === 'disk on fire')
    const node = { id: 'n', connections: 0, subscriptions: 0, channels: 0, startedAt: 0, updatedAt: 0 }
    await assert.rejects(w!.engine.registerNode(node, 1000), (e: unknown) => isCode('internal')(e) && (e as Error).message === 'not an Error')
  })

  it('over an engine without occupancy, every change counts (each worker is its own fleet)', async (t) => {
    const inner = new MemoryEngine()
    Object.defineProperty(inner, 'occupancy', { value: undefined })
    const [w] = await hosted(t, inner, 1)
    assert.equal(await w!.engine.occupancy('a', 'n1', true, 1000), true)
    assert.equal(await w!.engine.occupancy('a', 'n2', true, 1000), true)
    assert.equal(await w!.engine.occupancy('a', 'n2', false, 1000), true)
  })
})

describe('EngineHost: channel interest', () => {
  it('keeps feeding the other workers of a channel one worker leaves; the engine unsubscribes when the last one leaves', async (t) => {
    const inner = new FeedControlEngine()
    const [w0, w1, w2] = await hosted(t, inner, 3)
    await w0!.engine.subscribe('a')
    await w1!.engine.subscribe('a')
    await w2!.engine.unsubscribe('a') // never subscribed: changes nothing
    await w2!.engine.unsubscribe('nobody') // a channel no worker wants: changes nothing either
    await w0!.engine.unsubscribe('a')
    assert.deepEqual(inner.unsubscribes, [], 'worker 1 still wants the channel')
    await w2!.engine.publish('a', 1, STREAM)
    await w1!.rec.until('delivery to the worker still subscribed', () => w1!.rec.pubs.length === 1)
    await turn()
    assert.equal(w0!.rec.pubs.length, 0, 'the worker that left gets nothing')
    await w1!.engine.unsubscribe('a')
    await inner.until('the engine unsubscribes', () => inner.unsubscribes.length === 1)
    assert.deepEqual(inner.unsubscribes, ['a'])
  })

  it('a failed engine unsubscribe does not disturb the primary', async (t) => {
    const inner = new FeedControlEngine()
    const [w] = await hosted(t, inner, 1)
    await w!.engine.subscribe('a')
    inner.failUnsubscribe()
    await w!.engine.unsubscribe('a')
    await inner.until('the engine unsubscribes', () => inner.unsubscribes.length === 1)
    await turn()
    assert.equal((await w!.engine.publish('a', 1, STREAM)).offset, 1)
  })

  it('a worker detached twice (its disconnect, then its exit) is forgotten once, the others kept', async (t) => {
    const [w0, w1] = await hosted(t, new MemoryEngine(), 2)
    await w0!.engine.subscribe('a')
    await w1!.engine.subscribe('a')
    w0!.host.detach(w0!.primarySide)
    w0!.host.detach(w0!.primarySide)
    await w1!.engine.publish('a', 1, STREAM)
    await w1!.rec.until('delivery', () => w1!.rec.pubs.length === 1)
  })
})

describe('EngineHost: the primary side', () => {
  it('serves a detached worker no more', async (t) => {
    const [w] = await hosted(t, new MemoryEngine(), 1, 200)
    await w!.engine.nodes()
    w!.host.detach(w!.primarySide)
    await assert.rejects(w!.engine.nodes(), isCode('engine_unavailable'))
  })

  it('lets the primary use the shared engine itself: what it publishes reaches the subscribed workers', async (t) => {
    const [w] = await hosted(t, new MemoryEngine(), 1)
    await w!.engine.subscribe('a')
    const out = await w!.host.engine.publish('a', 'from the primary', STREAM)
    await w!.rec.until('the publication', () => w!.rec.pubs.length === 1)
    assert.deepEqual(w!.rec.pubs[0], { channel: 'a', pub: { offset: out.offset, epoch: out.epoch, data: 'from the primary' } })
  })
})

describe('EngineHost: a worker whose channel closed', () => {
  it('is sent nothing more before it is detached: no publication, control, state change or answer', async (t) => {
    const inner = new FeedControlEngine()
    const [gone, alive] = await hosted(t, inner, 2)
    await gone!.engine.subscribe('a')
    await alive!.engine.subscribe('a')
    // A request in flight when the worker's channel closes is served, but its answer is not sent.
    gone!.workerSide.send({ hf: 'req', id: 999, op: 'nodes', args: [] })
    gone!.workerSide.disconnect()
    await alive!.engine.publish('a', 1, STREAM)
    await alive!.engine.publishControl({ type: 'disconnect', user: 'u', code: 4012, reason: 'x', node: 'n' })
    inner.outage()
    inner.restore()
    await alive!.rec.until('delivery to the live worker', () => alive!.rec.pubs.length === 1 && alive!.rec.controls.length === 1)
    await alive!.rec.untilStates(2)
    await turn()
    // A send on the closed channel would have emitted 'error' on its port and ended this process.
    assert.equal(gone!.rec.pubs.length, 0)
  })
})

describe('IpcEngine', () => {
  it("is named 'ipc' (the engine label of the node's metrics)", () => {
    const [, w] = portPair()
    assert.equal(new IpcEngine({ port: w }).name, 'ipc')
  })

  it('needs an IPC channel', () => {
    const noChannel = { on() {}, off() {}, connected: false } as unknown as IpcPort
    assert.throws(() => new IpcEngine({ port: noChannel }), TypeError)
  })

  it('cannot be started twice', async () => {
    const [, w] = portPair()
    const engine = new IpcEngine({ port: w })
    await engine.start(new RecordingHandler())
    await assert.rejects(engine.start(new RecordingHandler()), isCode('internal'))
    await engine.close()
  })

  it('follows the state of the primary engine', async (t) => {
    const inner = new FeedControlEngine()
    const [w] = await hosted(t, inner, 1)
    await w!.engine.nodes() // the host has started its engine
    assert.equal(w!.engine.isReady(), true)
    inner.outage()
    await w!.rec.untilStates(1)
    assert.deepEqual(w!.rec.states, [false])
    assert.equal(w!.engine.isReady(), false)
    inner.restore()
    await w!.rec.untilStates(2)
    assert.deepEqual(w!.rec.states, [false, true])
    assert.equal(w!.engine.isReady(), true)
  })

  it('fails a call in flight at once when it closes, and every later call without asking the primary', async (t) => {
    const inner = new FeedControlEngine()
    const [w, other] = await hosted(t, inner, 2, 60_000)
    await w!.engine.subscribe('a')
    await w!.engine.publish('a', 1, STREAM)
    await w!.rec.until('the live feed', () => w!.rec.pubs.length === 1)
    const release = inner.holdHistory('a', 'page-then-wait')
    const read = w!.engine.history('a', { stream: STREAM, limit: 10 })
    await inner.until('the held read', () => inner.held === 1)
    const t0 = Date.now()
    await w!.engine.close()
    await assert.rejects(read, isCode('engine_unavailable'))
    await assert.rejects(w!.engine.nodes(), isCode('engine_unavailable'))
    assert.ok(Date.now() - t0 < 1000, 'no wait for the 60 s call timeout')
    assert.equal(w!.engine.isReady(), false)
    release()
    // The primary still counts the closed engine's subscription; what it sends is not delivered.
    await other!.engine.subscribe('a')
    await other!.engine.publish('a', 2, STREAM)
    await other!.rec.until('delivery to the other worker', () => other!.rec.pubs.length === 1)
    await turn()
    assert.equal(w!.rec.pubs.length, 1, 'nothing after close')
  })

  it('ignores an answer that comes after its call timed out, and what else the app sends on the channel', async (t) => {
    const inner = new FeedControlEngine()
    const [w] = await hosted(t, inner, 1, 200)
    await w!.engine.publish('a', 1, STREAM)
    const release = inner.holdHistory('a', 'page-then-wait')
    await assert.rejects(w!.engine.history('a', { stream: STREAM, limit: 10 }), isCode('engine_unavailable'))
    const late = nextMessage(w!.workerSide, 'res')
    release()
    await late
    for (const m of [null, 'text', 7, { type: 'app' }, { hf: 1 }]) {
      w!.workerSide.send(m)
      w!.primarySide.send(m)
    }
    await turn()
    assert.equal((await w!.engine.publish('a', 2, STREAM)).offset, 2, 'still working')
  })
})
