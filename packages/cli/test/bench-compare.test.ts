import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Writable } from 'node:stream'
import { formatCompare, renderCompareHtml, resolveBenchConfig, runCompare } from '../src/bench/index.js'
import { loadUws } from '@holdfast/server/internal'

const quiet = new Writable({ write: (_c, _e, cb) => cb() })

describe('holdfast bench --compare', () => {
  it('runs the same scenario against holdfast (on ws and on uWS), raw ws, Socket.IO and uWebSockets.js, each in its own process', async () => {
    const cfg = resolveBenchConfig(['--compare', '--connections', '40', '--duration', '2', '--rate', '10', '--workers', '1', '--quiet'], {})
    const c = await runCompare(cfg, { stderr: quiet })
    // uWebSockets.js has native binaries for linux x64 on Node 20 (ABI 115); where the mirror has
    // none (Node 24 today) it must be skipped with a reason, never measured as its JS fallback.
    const uwsLoads = !('error' in loadUws())
    if (process.versions.modules === '115') assert.equal(uwsLoads, true, 'uWebSockets.js loads on Node 20 linux x64')
    assert.deepEqual(Object.keys(c.skipped), uwsLoads ? [] : ['holdfast-uws', 'uws'])
    assert.deepEqual(
      c.runs.map((r) => r.target.kind),
      uwsLoads ? ['holdfast', 'holdfast-uws', 'ws', 'socketio', 'uws'] : ['holdfast', 'ws', 'socketio'],
    )
    const pids = new Set<number | null>()
    for (const r of c.runs) {
      assert.equal(r.connect.connected, 40, `${r.target.kind} connected`)
      assert.equal(r.delivery.lost, 0, `${r.target.kind} lost`)
      assert.equal(r.delivery.duplicated, 0, `${r.target.kind} duplicated`)
      assert.equal(r.delivery.delivered, 40 * r.delivery.published, `${r.target.kind} delivered`)
      assert.ok(r.server !== null && r.server.cpuMicrosPerDelivery !== null, `${r.target.kind} server measured`)
      assert.equal(r.target.startedByBench, true)
      pids.add(r.target.pid)
    }
    assert.equal(pids.size, c.runs.length, 'each server ran in its own process')
    assert.deepEqual(
      c.ratios.map((x) => `${x.holdfast}/${x.peer}`),
      uwsLoads ? ['holdfast/ws', 'holdfast/socketio', 'holdfast/uws', 'holdfast-uws/uws'] : ['holdfast/ws', 'holdfast/socketio'],
    )
    for (const x of c.ratios) {
      assert.ok(x.cpuPerDelivery !== null && x.cpuPerDelivery > 0)
      assert.ok(x.deliveriesPerSecond !== null && x.deliveriesPerSecond > 0)
    }
    const table = formatCompare(c)
    assert.match(table, /holdfast \/ peer/)
    if (uwsLoads) assert.match(table, /holdfast-uws vs uWebSockets\.js pub\/sub/)
    assert.ok(renderCompareHtml(c).includes('<svg'))
  })
})
