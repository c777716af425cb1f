import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import { EngineHost, IpcEngine, type IpcPort } from '../src/engine/ipc-engine.js'
import { MemoryEngine } from '../src/engine/memory-engine.js'
import { engineContract, RecordingHandler } from './engine-contract.js'

/**
 * Two ends of an IPC channel inside one process: messages are structured-cloned and delivered on
 * a later turn, as node's `serialization: 'advanced'` channel does between processes.
 */
function portPair(): [IpcPort & { disconnect(): void }, IpcPort & { disconnect(): void }] {
  const make = (): IpcPort & { disconnect(): void; peer?: EventEmitter; connected: boolean } => {
    const ee = new EventEmitter() as EventEmitter & { connected: boolean; peer?: EventEmitter; disconnect(): void; send(m: unknown): boolean }
    ee.connected = true
    ee.send = (m: unknown) => {
      if (!ee.connected) return false
      const copy = structuredClone(m)
      setImmediate(() => ee.peer?.emit('message', copy))
      return true
    }
    ee.disconnect = () => {
      ee.connected = false
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
