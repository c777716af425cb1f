/**
 * Server CPU per heartbeat: one holdfast process holds N idle connections (connected, two
 * subscriptions, as in idle-memory.ts) with a short ping interval, and reports its own CPU time
 * over a window of nothing but pings and pongs, per pong it took (the `ping_rtt_ms` count): the
 * ping's write, the pong's read, decode and bookkeeping, kernel time included. The process's CPU
 * over the same window with no connections is taken first and subtracted.
 *
 *   node --conditions=source --import tsx bench/heartbeat-cpu.ts [--connections 5000] [--ping-ms 1000] [--seconds 10] [--transport ws|uws]
 *
 * At the default 25 s interval, 100,000 connections send 4,000 pongs per second: the figure times
 * 4,000 is the share of a core heartbeats take there.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '5000' },
    'ping-ms': { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    transport: { type: 'string', default: 'ws' },
    role: { type: 'string' },
  },
})
const N = Number(values.connections)
const PING_MS = Number(values['ping-ms'])
const SECONDS = Number(values.seconds)

interface Window {
  cpuUs: number
  pongs: number
  seconds: number
}

async function serverRole(): Promise<void> {
  const { createHoldfast } = await import('@holdfast/server')
  const opts = { logger: false as const, pingIntervalMs: PING_MS, maxConnectionsPerIp: 1_000_000, connectRatePerIp: { perSecond: 1e6, burst: 1e6 } }
  const holdfast = createHoldfast(values.transport === 'uws' ? { ...opts, transport: 'uws' } : opts)
  let port: number
  if (values.transport === 'uws') port = await holdfast.listen({ host: '127.0.0.1', port: 0 })
  else {
    const http = createServer()
    holdfast.attach(http)
    http.listen(0, '127.0.0.1')
    await once(http, 'listening')
    port = (http.address() as AddressInfo).port
  }
  const window = async (): Promise<Window> => {
    const c0 = process.cpuUsage()
    const p0 = holdfast.counters.observations('ping_rtt_ms').count
    const t0 = performance.now()
    await new Promise((r) => setTimeout(r, SECONDS * 1000))
    const c = process.cpuUsage(c0)
    return { cpuUs: c.user + c.system, pongs: holdfast.counters.observations('ping_rtt_ms').count - p0, seconds: (performance.now() - t0) / 1000 }
  }
  process.send?.({ type: 'listening', port })
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'window') void window().then((w) => process.send?.({ type: 'window', w }))
  })
}

async function measure(server: ReturnType<typeof fork>): Promise<Window> {
  server.send({ type: 'window' })
  const [msg] = (await once(server, 'message')) as [{ w: Window }]
  return msg.w
}

if (values.role === 'server') await serverRole()
else {
  const server = fork(new URL(import.meta.url).pathname, [...process.argv.slice(2), '--role', 'server'], { execArgv: ['--conditions=source', '--import', 'tsx'] })
  const [hello] = (await once(server, 'message')) as [{ port: number }]
  const idle = await measure(server)
  const client = fork(new URL('./idle-memory.ts', import.meta.url).pathname, ['--role', 'client', '--kind', 'holdfast', '--url', `ws://127.0.0.1:${hello.port}/ws`, '--connections', String(N)], {
    execArgv: ['--conditions=source', '--import', 'tsx'],
  })
  await once(client, 'message')
  // Let the ramp's garbage and the first round of pings settle.
  await new Promise((r) => setTimeout(r, 2 * PING_MS + 1000))
  const busy = await measure(server)
  client.kill('SIGKILL')
  server.kill('SIGKILL')
  const perPong = (busy.cpuUs - (idle.cpuUs * busy.seconds) / idle.seconds) / busy.pongs
  console.log(`transport ${values.transport}, ${N} connections, ping every ${PING_MS} ms, ${SECONDS} s window`)
  console.log(`pongs: ${busy.pongs} (${(busy.pongs / busy.seconds).toFixed(0)}/s); server CPU ${(busy.cpuUs / busy.seconds / 1e4).toFixed(1)}% of a core, idle process ${(idle.cpuUs / idle.seconds / 1e4).toFixed(1)}%`)
  console.log(`server CPU per ping + pong: ${perPong.toFixed(1)} µs; at 4,000 pings/s (100,000 connections, 25 s): ${((perPong * 4000) / 1e4).toFixed(1)}% of a core`)
  process.exit(0)
}
