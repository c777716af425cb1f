/**
 * Issue 5's scenario at a larger size: `holdfast serve --workers N` (memory engine shared through
 * the primary) under a steady load of subscribed clients and publishers, running in separate
 * client processes; a rolling reload (SIGHUP) with the drain spread over --drain-ms, the same
 * reload with drainMs 0, and optionally a kill -9 of one worker. For each run it prints delivered /
 * lost / duplicated publications (every subscriber checked against every acknowledged publication
 * of its channel), the connection success rate and retried attempts, and the peak number of
 * handshakes (and of closes) in any 100 ms window.
 *
 *   node --conditions=source --import tsx bench/rolling-reload.ts [--clients 2000] [--channels 40]
 *        [--rate 200] [--publishers 4] [--processes 2] [--workers 2] [--drain-ms 10000]
 *        [--runs spread,unspread,kill] [--json FILE]
 *
 * The scenario code is the one the tests run (test/operations/reload-scenario.ts).
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { LOAD_OPTIONS, num as numberOption } from './load-options.js'
import { suiteCleanup } from '@holdfast/testkit/operations/cluster'
import { describeResult, runScenario, type ScenarioResult } from '@holdfast/testkit/operations/reload-scenario'

const { values } = parseArgs({
  options: {
    ...LOAD_OPTIONS,
    workers: { type: 'string', default: '2' },
    'drain-ms': { type: 'string', default: '10000' },
    runs: { type: 'string', default: 'spread,unspread' },
    json: { type: 'string' },
  },
})

const num = (name: keyof typeof values): number => numberOption(values, name)

const runs = (values.runs ?? '').split(',').filter((r) => r !== '')
for (const r of runs) if (!['spread', 'unspread', 'kill'].includes(r)) throw new TypeError(`--runs: unknown run "${r}" (spread, unspread, kill)`)

const results: ScenarioResult[] = []
for (const run of runs) {
  const cleanup = suiteCleanup()
  const started = performance.now()
  console.log(`\n== ${run}`)
  try {
    const r = await runScenario(cleanup, {
      clients: num('clients'),
      channels: num('channels'),
      rate: num('rate'),
      publishers: num('publishers'),
      processes: num('processes'),
      workers: num('workers'),
      drainMs: run === 'unspread' ? 0 : num('drain-ms'),
      action: run === 'kill' ? 'kill' : 'reload',
      log: (line) => console.log(`   ${line}`),
    })
    console.log(describeResult(r))
    results.push(r)
  } finally {
    await cleanup.run()
  }
  console.log(`   (${((performance.now() - started) / 1000).toFixed(0)} s)`)
}

console.log('\n| run | drainMs | clients | publications | delivered | lost | duplicated | connection success | retried attempts | peak handshakes / 100 ms | peak closes / 100 ms | all back after |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const r of results) {
  const d = r.delivery
  const success = r.moved === 0 ? 100 : (100 * r.movedBack) / r.moved
  console.log(
    `| ${r.action === 'kill' ? 'kill -9' : 'rolling reload'} | ${r.drainMs} | ${r.clients} | ${r.publications} | ${d.delivered} / ${d.expected} | ${d.lost} | ${d.duplicates} | ${success.toFixed(2)}% (${r.movedBack}/${r.moved}) | ${r.retries} | ${r.peakPer100ms} | ${r.closePeakPer100ms} | ${(r.allBackMs / 1000).toFixed(1)} s |`,
  )
}
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(results, null, 2))
