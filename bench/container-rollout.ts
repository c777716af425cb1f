/**
 * A Kubernetes-style rolling update of the real image (test/deploy/rollout.ts): N containers of
 * `--engine redis` behind nginx, replaced one at a time (new one ready → added to the upstream →
 * old one removed → preStop wait → SIGTERM → drain → exit), under subscribers and publishers
 * connected through nginx. Prints delivered / lost / duplicated, connection success, retried
 * attempts, the peak handshakes and closes per 100 ms, and each step's timings.
 *
 *   node --conditions=source --import tsx bench/container-rollout.ts [--clients 2000] [--channels 40]
 *        [--rate 200] [--publishers 4] [--processes 2] [--replicas 3] [--prestop-ms 5000]
 *        [--drain-ms 10000] [--grace 30] [--trust-proxy false] [--json FILE]
 *
 * --trust-proxy false starts the containers without HOLDFAST_TRUST_PROXY: their per-IP limits then
 * count nginx as one client (for comparison).
 *
 * Builds the image first (podman, offline, from a local Node base; see test/deploy/podman.ts), or
 * uses HOLDFAST_IMAGE. Needs podman, buildah, runc, nginx and redis-server.
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { LOAD_OPTIONS, num as numberOption } from './load-options.js'
import { suiteCleanup } from '@holdfast/testkit/operations/cluster'
import { describeOutcome } from '@holdfast/testkit/operations/load'
import { buildImage } from '@holdfast/testkit/deploy/podman'
import { runRollout } from '@holdfast/testkit/deploy/rollout'

const { values } = parseArgs({
  options: {
    ...LOAD_OPTIONS,
    replicas: { type: 'string', default: '3' },
    'prestop-ms': { type: 'string', default: '5000' },
    'drain-ms': { type: 'string', default: '10000' },
    grace: { type: 'string', default: '30' },
    'trust-proxy': { type: 'string', default: 'true' },
    json: { type: 'string' },
  },
})
const num = (name: keyof typeof values): number => numberOption(values, name)

const cleanup = suiteCleanup()
try {
  const image = await buildImage((line) => console.log(`   ${line}`))
  const started = performance.now()
  const r = await runRollout(cleanup, {
    image,
    clients: num('clients'),
    channels: num('channels'),
    rate: num('rate'),
    publishers: num('publishers'),
    processes: num('processes'),
    replicas: num('replicas'),
    preStopMs: num('prestop-ms'),
    drainMs: num('drain-ms'),
    graceSeconds: num('grace'),
    trustProxy: values['trust-proxy'] !== 'false',
    log: (line) => console.log(`   ${line}`),
  })
  console.log(describeOutcome(`rollout of ${r.replicas} containers (preStop ${r.preStopMs} ms, drain ${r.drainMs} ms, grace ${r.graceSeconds} s)`, r))
  const d = r.delivery
  const success = r.moved === 0 ? 100 : (100 * r.movedBack) / r.moved
  console.log('\n| clients | publications | delivered | lost | duplicated | connection success | retried attempts | peak handshakes / 100 ms | peak closes / 100 ms | new container ready | old container exit after SIGTERM (code) | rollout | all back after |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  const range = (xs: number[]): string => `${(Math.min(...xs) / 1000).toFixed(1)}–${(Math.max(...xs) / 1000).toFixed(1)} s`
  console.log(
    `| ${r.clients} | ${r.publications} | ${d.delivered} / ${d.expected} | ${d.lost} | ${d.duplicates} | ${success.toFixed(2)}% (${r.movedBack}/${r.moved}) | ${r.retries} | ${r.peakPer100ms} | ${r.closePeakPer100ms} | ${range(r.steps.map((s) => s.readyMs))} | ${range(r.steps.map((s) => s.stopMs))} (${[...new Set(r.steps.map((s) => s.exitCode))].join(', ')}) | ${(r.actionMs / 1000).toFixed(1)} s | ${(r.allBackMs / 1000).toFixed(1)} s |`,
  )
  console.log(`   refused by the containers: ${JSON.stringify(r.refusals)}; nginx: ${r.nginx.limited} over its per-client limits, ${r.nginx.upstreamErrors} failed upstream attempts`)
  console.log(`   (${((performance.now() - started) / 1000).toFixed(0)} s)`)
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(r, null, 2))
} finally {
  await cleanup.run()
}
