import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Writable } from 'node:stream'
import { formatCompare, renderCompareHtml, resolveBenchConfig, runCompare } from '../src/bench/index.js'

const quiet = new Writable({ write: (_c, _e, cb) => cb() })

describe('holdfast bench --compare', () => {
  it('runs the same scenario against holdfast, raw ws, Socket.IO and uWebSockets.js, each in its own process', async () => {
    const cfg = resolveBenchConfig(['--compare', '--connections', '40', '--duration', '2', '--rate', '10', '--workers', '1', '--quiet'], {})
    const c = await runCompare(cfg, { stderr: quiet })
    // uWebSockets.js loads on this platform (linux x64): it must not be skipped here.
    assert.deepEqual(c.skipped, {})
    assert.deepEqual(
      c.runs.map((r) => r.target.kind),
      ['holdfast', 'ws', 'socketio', 'uws'],
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
    assert.equal(pids.size, 4, 'each server ran in its own process')
    assert.deepEqual(
      c.ratios.map((x) => x.peer),
      ['ws', 'socketio', 'uws'],
    )
    for (const x of c.ratios) {
      assert.ok(x.cpuPerDelivery !== null && x.cpuPerDelivery > 0)
      assert.ok(x.deliveriesPerSecond !== null && x.deliveriesPerSecond > 0)
    }
    const table = formatCompare(c)
    assert.match(table, /holdfast \/ peer/)
    assert.match(table, /vs uWebSockets\.js pub\/sub/)
    assert.ok(renderCompareHtml(c).includes('<svg'))
  })
})
