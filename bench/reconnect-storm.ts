// Reconnect storm: N clients on one node, the node restarts on the same port (shared engine, so
// history survives), and we measure how long it takes until every client has reconnected,
// resubscribed and recovered, how spread the reconnect attempts are, and whether anything was lost
// or duplicated. Prints numbers; not a test.
//
//   node --conditions=source --import tsx packages/client/bench/reconnect-storm.ts --clients 1000 [--downtime-ms 0]
import { parseArgs } from 'node:util'
import { WebSocket } from 'ws'
import { HoldfastClient, type Subscription } from '@holdfast/client'
import { createNode, SharedEngine } from '@holdfast/testkit/support/real-server'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    'downtime-ms': { type: 'string', default: '0' },
    before: { type: 'string', default: '10' },
    during: { type: 'string', default: '5' },
  },
})
const N = Number(values.clients)
const DOWNTIME = Number(values['downtime-ms'])
const BEFORE = Number(values.before)
const DURING = Number(values.during)
const CHANNEL = 'bench:room'
const limits = {
  maxConnectionsPerIp: 1_000_000,
  connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 },
  maxConnections: 1_000_000,
}

const engine = new SharedEngine()
const a = await (await createNode(engine, limits)).listen(0)
const port = a.port

interface Probe {
  client: HoldfastClient
  sub: Subscription
  offsets: number[]
  attempts: number[]
  recoveredAt: number | undefined
  recovered: boolean | undefined
}

const probes: Probe[] = []
let restartAt = 0
const waiters = new Set<() => void>()
const poke = () => waiters.forEach((w) => w())
function until(pred: () => boolean, what: string, ms = 120_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (pred()) return resolve()
    const timer = setTimeout(() => {
      waiters.delete(check)
      reject(new Error(`timed out waiting for ${what}`))
    }, ms)
    const check = () => {
      if (!pred()) return
      clearTimeout(timer)
      waiters.delete(check)
      resolve()
    }
    waiters.add(check)
  })
}

for (let i = 0; i < N; i++) {
  const client = new HoldfastClient(a.url, { WebSocket })
  client.on('error', () => {})
  const sub = client.subscribe(CHANNEL)
  const probe: Probe = { client, sub, offsets: [], attempts: [], recoveredAt: undefined, recovered: undefined }
  client.on('connecting', () => {
    if (restartAt > 0) probe.attempts.push(performance.now() - restartAt)
  })
  sub.on('publication', (p) => {
    probe.offsets.push(p.offset)
    poke()
  })
  sub.on('subscribed', (s) => {
    if (restartAt > 0 && s.wasRecovering) {
      probe.recoveredAt = performance.now() - restartAt
      probe.recovered = s.recovered
    }
    poke()
  })
  probes.push(probe)
  client.connect()
}
await until(() => probes.every((p) => p.sub.state === 'subscribed'), 'initial subscriptions')
for (let i = 1; i <= BEFORE; i++) await a.hf.publish(CHANNEL, { i })
await until(() => probes.every((p) => p.offsets.length >= BEFORE), 'initial publications')

restartAt = performance.now()
const bPending = createNode(engine, limits)
await a.stop().then(() => undefined)
const stoppedAt = performance.now() - restartAt
const b = await bPending
for (let i = BEFORE + 1; i <= BEFORE + DURING; i++) await b.hf.publish(CHANNEL, { i })
if (DOWNTIME > 0) await new Promise((r) => setTimeout(r, DOWNTIME))
const bNode = await b.listen(port)
const upAt = performance.now() - restartAt
await until(() => probes.every((p) => p.recoveredAt !== undefined && p.offsets.length >= BEFORE + DURING), 'recovery')
const doneAt = performance.now() - restartAt

const total = BEFORE + DURING
let lost = 0
let duplicated = 0
let outOfOrder = 0
for (const p of probes) {
  const seen = new Set(p.offsets)
  lost += total - [...seen].filter((o) => o >= 1 && o <= total).length
  duplicated += p.offsets.length - seen.size
  for (let i = 1; i < p.offsets.length; i++) if ((p.offsets[i] as number) <= (p.offsets[i - 1] as number)) outOfOrder++
}
const firstAttempts = probes.map((p) => p.attempts[0] ?? Number.NaN).sort((x, y) => x - y)
const allAttempts = probes.flatMap((p) => p.attempts).sort((x, y) => x - y)
const recoveredTimes = probes.map((p) => p.recoveredAt as number).sort((x, y) => x - y)
const pct = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? Number.NaN
const ms = (x: number) => `${x.toFixed(0)} ms`

console.log(`clients: ${N}, publications before/during the restart: ${BEFORE}/${DURING}, extra downtime: ${DOWNTIME} ms`)
console.log(`old node closed (all clients told "restart") at ${ms(stoppedAt)}, new node listening at ${ms(upAt)}`)
console.log(`all ${N} clients resubscribed and recovered ${ms(doneAt)} after the restart began (${ms(doneAt - upAt)} after the new node listened)`)
console.log(`recovered: ${probes.filter((p) => p.recovered === true).length}, not recovered: ${probes.filter((p) => p.recovered === false).length}`)
console.log(`first reconnect attempts: first ${ms(pct(firstAttempts, 0))}, median ${ms(pct(firstAttempts, 0.5))}, last ${ms(pct(firstAttempts, 1))}`)
console.log(`all reconnect attempts: ${allAttempts.length} (${(allAttempts.length / N).toFixed(2)} per client), last at ${ms(pct(allAttempts, 1))}`)
console.log(`recovery completed: p50 ${ms(pct(recoveredTimes, 0.5))}, p95 ${ms(pct(recoveredTimes, 0.95))}, max ${ms(pct(recoveredTimes, 1))}`)
console.log(`lost: ${lost}, duplicated: ${duplicated}, out of order: ${outOfOrder}`)

for (const p of probes) p.client.close()
await bNode.stop()
await engine.close()
