/**
 * Issue 5's headline, heavy (it runs in CI; numbers kept modest for a 2-core runner): 500
 * subscribed clients in two client processes and 200 publications/s from four publishers, against
 * `holdfast serve --workers 2`. A rolling reload moves every client (some twice) and must lose and
 * duplicate nothing; the drain spreads the reconnects, which the same reload with `drainMs: 0`
 * does not. (kill -9 under the same load: worker-crash.test.ts.)
 *
 * Each subscriber is on one of 10 channels and is held to every acknowledged publication of its
 * channel (500 clients × 20 publications/s per channel: 10,000 deliveries/s).
 */
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { suiteCleanup } from './cluster.js'
import { assertNothingLost, describeResult, peakInWindow, runScenario, type ScenarioResult } from './reload-scenario.js'

const CLIENTS = 500
/**
 * The gateway's default drain window. Shorter windows spread less, and on a busy runner a stall
 * of the processes bunches the closes that fell due meanwhile; the default keeps the spread peak
 * far below the unspread one even then.
 */
const SPREAD_DRAIN_MS = 10_000

describe('operations under load (heavy): rolling reload with 500 clients, 200 publications/s', () => {
  const cleanup = suiteCleanup()
  after(cleanup.run)
  const results: ScenarioResult[] = []
  const log = (line: string): void => void process.stderr.write(`# ${line.replaceAll('\n', '\n# ')}\n`)

  test('the window counter', () => {
    assert.equal(peakInWindow([], 100), 0)
    assert.equal(peakInWindow([0, 50, 99.9, 100, 150, 300], 100), 3)
    assert.equal(peakInWindow([5, 1, 3, 2, 4], 100), 5)
  })

  test(`rolling reload with the drain spread over ${SPREAD_DRAIN_MS} ms: nothing lost, every client back, every worker replaced`, async () => {
    const r = await runScenario(cleanup, { clients: CLIENTS, drainMs: SPREAD_DRAIN_MS, action: 'reload', log })
    log(describeResult(r))
    results.push(r)
    assertNothingLost(r, CLIENTS)
    assert.equal(r.workersAfter.length, 2)
    for (const p of r.workersAfter) assert.ok(!r.workersBefore.includes(p), 'every worker replaced')
    // Every client was on an old worker, so every one reconnected (some twice).
    assert.equal(r.moved, CLIENTS)
    assert.equal(r.notResumed, 0, 'sessions resume on the new workers')
  })

  test('the same rolling reload with drainMs 0: nothing lost either, but the reconnects come in a burst', async () => {
    const r = await runScenario(cleanup, { clients: CLIENTS, drainMs: 0, action: 'reload', log })
    log(describeResult(r))
    results.push(r)
    assertNothingLost(r, CLIENTS)
    const spread = results[0]
    assert.ok(spread !== undefined, 'the spread reload ran first')
    log(`peak handshakes per 100 ms: ${spread.peakPer100ms} spread over ${SPREAD_DRAIN_MS} ms vs ${r.peakPer100ms} with drainMs 0`)
    log(`peak closes per 100 ms: ${spread.closePeakPer100ms} spread vs ${r.closePeakPer100ms} with drainMs 0`)
    // The server's part: without spreading a worker tells all of its clients at once.
    assert.ok(spread.closePeakPer100ms * 4 < r.closePeakPer100ms, `closes spread: ${spread.closePeakPer100ms} vs ${r.closePeakPer100ms} per 100 ms`)
    // The clients' handshakes follow the closes, but on a loaded 2-core machine the unspread burst
    // is smeared by CPU starvation (the clients cannot reconnect as fast as they are told to), so
    // this bound is looser than the server-side one above; the bench reports both at full size.
    assert.ok(
      spread.peakPer100ms < r.peakPer100ms,
      `the spread drain's handshake peak (${spread.peakPer100ms}/100 ms) is under the unspread one (${r.peakPer100ms}/100 ms)`,
    )
  })
})
