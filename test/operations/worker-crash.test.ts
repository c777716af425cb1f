/**
 * kill -9 of a worker under issue 5's load (heavy; runs in CI): 500 subscribed clients in two
 * client processes, 200 publications/s from four publishers, `holdfast serve --workers 2` with the
 * memory engine hosted by the primary. The primary replaces the worker at once; its clients
 * reconnect to the survivor or the replacement and recover from the history the workers share, so
 * nothing acknowledged is lost or duplicated — the publishers' in-flight publishes on the dead
 * worker included (resent by the SDK with their ids, deduplicated by the shared engine).
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { suiteCleanup } from './cluster.js'
import { assertNothingLost, describeResult, runScenario } from './reload-scenario.js'

const CLIENTS = 500

describe('operations under load (heavy): kill -9 of a worker with 500 clients, 200 publications/s', () => {
  const cleanup = suiteCleanup()
  after(cleanup.run)

  test('replaced at once; its clients recover; nothing lost or duplicated within history', async () => {
    const r = await runScenario(cleanup, {
      clients: CLIENTS,
      drainMs: 1000,
      action: 'kill',
      log: (line) => void process.stderr.write(`# ${line.replaceAll('\n', '\n# ')}\n`),
    })
    process.stderr.write(`# ${describeResult(r).replaceAll('\n', '\n# ')}\n`)
    assertNothingLost(r, CLIENTS)
    assert.equal(r.workersAfter.length, 2, 'replaced')
    assert.ok(!r.workersAfter.includes(r.workersBefore[0] as number), 'the killed worker is gone')
    assert.ok(r.workersAfter.includes(r.workersBefore[1] as number), 'the other worker kept serving')
    // Round robin gave the killed worker about half of the clients; each reconnected.
    assert.ok(r.moved >= CLIENTS / 4, `the killed worker's clients reconnected (${r.moved})`)
    assert.ok(r.moved < CLIENTS, 'the other worker kept its clients')
  })
})
