/**
 * The server of bench/http-fallback.ts: one holdfast node on node:http in a process of its own, so
 * its CPU time is its own. `--refuse-upgrades` answers every WebSocket upgrade with 403 (clients
 * then take the HTTP-streaming fallback). Prints `port <n>`; answers `cpu` on stdin with its CPU
 * time in µs (user + system).
 */
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { createHoldfast } from '@holdfast/server'

const refuse = process.argv.includes('--refuse-upgrades')
const hf = createHoldfast({ logger: false, commandRate: { perSecond: 10_000, burst: 10_000 }, processMetrics: false })
await hf.ready()
const server = createServer((req, res) => {
  if (!hf.handleHttpStream(req, res)) res.writeHead(404).end()
})
server.on('upgrade', (req, socket, head) => {
  if (refuse) socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
  else hf.handleUpgrade(req, socket, head)
})
server.listen(0, '127.0.0.1')
await once(server, 'listening')
process.stdout.write(`port ${(server.address() as AddressInfo).port}\n`)
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'cpu') {
    const u = process.cpuUsage()
    process.stdout.write(`cpu ${u.user + u.system}\n`)
  }
}
