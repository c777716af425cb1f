/**
 * Reconnect behaviour after a server restart, measured with real processes:
 * N client SDK instances (Node, `ws`) subscribe to one channel while a publisher client publishes
 * at a steady rate; the server process is killed (SIGKILL, or SIGTERM for a drain) and a new one
 * started on the same port. Reports the time from the new server listening to the last client
 * resubscribed, the spread of the clients' first reconnect attempts, recovery outcomes, and
 * lost / duplicated publications per client (every publication carries a sequence number).
 *
 *   node --conditions=source --import tsx bench/reconnect.ts [--clients 1000] [--signal KILL|TERM]
 *        [--down-ms 1000] [--rate 50] [--engine memory|redis] [--redis-url URL] [--json FILE]
 *
 * With the memory engine a restarted process has lost its history, so clients must report
 * recovered:false (and the publications made while it was down are lost by design — the check
 * counts only what the new server acknowledged); with `--engine redis` they recover everything.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { parseArgs } from 'node:util'
import { HoldfastClient } from '@holdfast/client'
import WebSocket from 'ws'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    signal: { type: 'string', default: 'KILL' },
    'down-ms': { type: 'string', default: '1000' },
    rate: { type: 'string', default: '50' },
    engine: { type: 'string', default: 'memory' },
    'redis-url': { type: 'string' },
    json: { type: 'string' },
  },
})
const N = Number(values.clients)
const DOWN_MS = Number(values['down-ms'])
const RATE = Number(values.rate)
const SIGNAL = values.signal === 'TERM' ? 'SIGTERM' : 'SIGKILL'
const CHANNEL = 'bench:reconnect'
const root = new URL('..', import.meta.url).pathname

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

// One source address carries every client here, so the per-IP limits are lifted for the run.
const configFile = `${tmpdir()}/holdfast-reconnect-bench.json`
writeFileSync(configFile, JSON.stringify({ maxConnectionsPerIp: 1_000_000, connectRatePerIp: { perSecond: 1_000_000, burst: 1_000_000 } }))

function startServer(port: number): Promise<{ proc: ChildProcess; listeningAt: number }> {
  const args = ['--conditions=source', '--import', 'tsx', 'packages/cli/src/bin.ts', 'serve', '--port', String(port), '--log-level', 'warn', '--drain-ms', '2000', '--config', configFile]
  if (values.engine === 'redis') args.push('--engine', 'redis', ...(values['redis-url'] ? ['--redis-url', values['redis-url']] : []))
  const proc = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, NODE_ENV: 'development' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return new Promise((resolve, reject) => {
    let out = ''
    const t = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('holdfast listening on')) {
        clearTimeout(t)
        resolve({ proc, listeningAt: performance.now() })
      }
    })
    proc.stderr?.on('data', (d: Buffer) => (out += d.toString()))
    proc.on('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)))
  })
}

interface ClientRecord {
  client: HoldfastClient
  seqs: number[]
  firstAttemptAfterKill: number | undefined
  resubscribedAt: number | undefined
  recovered: boolean | undefined
}

async function main(): Promise<void> {
  const port = await freePort()
  const url = `ws://127.0.0.1:${port}/ws`
  let server = await startServer(port)
  let killedAt = Number.POSITIVE_INFINITY
  const records: ClientRecord[] = []
  let subscribedCount = 0
  for (let i = 0; i < N; i++) {
    const client = new HoldfastClient(url, { WebSocket: WebSocket as never })
    const rec: ClientRecord = { client, seqs: [], firstAttemptAfterKill: undefined, resubscribedAt: undefined, recovered: undefined }
    client.on('connecting', () => {
      const now = performance.now()
      if (now > killedAt && rec.firstAttemptAfterKill === undefined) rec.firstAttemptAfterKill = now
    })
    const sub = client.subscribe(CHANNEL)
    sub.on('publication', (p) => rec.seqs.push((p.data as { seq: number }).seq))
    sub.on('subscribed', (e) => {
      if (!e.wasRecovering) subscribedCount++
      else if (performance.now() > killedAt && rec.resubscribedAt === undefined) {
        rec.resubscribedAt = performance.now()
        rec.recovered = e.recovered
      }
    })
    client.connect()
    records.push(rec)
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20))
  }
  const deadline = Date.now() + 60_000
  while (subscribedCount < N) {
    if (Date.now() > deadline) throw new Error(`only ${subscribedCount}/${N} subscribed`)
    await new Promise((r) => setTimeout(r, 50))
  }
  console.log(`${N} clients subscribed; publishing ${RATE}/s`)

  const publisher = new HoldfastClient(url, { WebSocket: WebSocket as never })
  publisher.connect()
  let seq = 0
  const acked = new Set<number>()
  let publishing = true
  const pubLoop = (async () => {
    while (publishing) {
      const s = seq++
      publisher.publish(CHANNEL, { seq: s }).then(
        () => acked.add(s),
        () => {},
      )
      await new Promise((r) => setTimeout(r, 1000 / RATE))
    }
  })()

  await new Promise((r) => setTimeout(r, 2000))
  killedAt = performance.now()
  server.proc.kill(SIGNAL)
  await new Promise((r) => server.proc.once('exit', r))
  console.log(`server stopped with ${SIGNAL}; restarting in ${DOWN_MS} ms`)
  await new Promise((r) => setTimeout(r, DOWN_MS))
  server = await startServer(port)
  const restartedAt = server.listeningAt
  const deadline2 = Date.now() + 120_000
  while (records.some((r) => r.resubscribedAt === undefined)) {
    if (Date.now() > deadline2) break
    await new Promise((r) => setTimeout(r, 50))
  }
  await new Promise((r) => setTimeout(r, 2000))
  publishing = false
  await pubLoop
  // Let the last publications arrive.
  await new Promise((r) => setTimeout(r, 1500))

  const resub = records.map((r) => r.resubscribedAt).filter((t): t is number => t !== undefined)
  const attempts = records.map((r) => r.firstAttemptAfterKill).filter((t): t is number => t !== undefined)
  let lost = 0
  let dup = 0
  let outOfOrder = 0
  for (const r of records) {
    const seen = new Set<number>()
    for (let i = 0; i < r.seqs.length; i++) {
      const s = r.seqs[i] as number
      if (seen.has(s)) dup++
      seen.add(s)
      if (i > 0 && s < (r.seqs[i - 1] as number)) {
        if (outOfOrder < 3 && process.env.BENCH_DEBUG) console.log('out of order', r.seqs.slice(Math.max(0, i - 5), i + 5))
        outOfOrder++
      }
    }
    for (const s of acked) if (!seen.has(s) && (r.recovered === true || s >= firstSeqAfterRestart(r))) lost++
  }
  const result = {
    clients: N,
    signal: SIGNAL,
    engine: values.engine,
    downMs: DOWN_MS,
    resubscribed: resub.length,
    recoveredTrue: records.filter((r) => r.recovered === true).length,
    recoveredFalse: records.filter((r) => r.recovered === false).length,
    restartToAllResubscribedMs: resub.length ? Math.round(Math.max(...resub) - restartedAt) : null,
    restartToFirstResubscribedMs: resub.length ? Math.round(Math.min(...resub) - restartedAt) : null,
    firstAttemptAfterStopMs: attempts.length ? Math.round(Math.min(...attempts) - killedAt) : null,
    lastFirstAttemptAfterStopMs: attempts.length ? Math.round(Math.max(...attempts) - killedAt) : null,
    publicationsAcked: acked.size,
    lost,
    duplicated: dup,
    outOfOrder,
  }
  console.log(JSON.stringify(result, null, 2))
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2))
  publisher.close()
  for (const r of records) r.client.close()
  server.proc.kill('SIGKILL')
  process.exit(0)

  // Without recovery (history lost with the process), a client is only owed what was published
  // after it resubscribed: the first sequence it saw after the restart marks that point.
  function firstSeqAfterRestart(r: ClientRecord): number {
    let last = -1
    for (let i = 1; i < r.seqs.length; i++) if ((r.seqs[i] as number) !== (r.seqs[i - 1] as number) + 1) last = r.seqs[i] as number
    return last === -1 ? Number.POSITIVE_INFINITY : last
  }
}

await main()
