/**
 * Where a connection's heap goes: holds N idle holdfast connections (as in idle-memory.ts) in
 * this process, takes a heap snapshot before and after, and prints the constructors whose total
 * self size grew the most, per connection. A profiling aid for the memory target.
 *
 *   node --expose-gc --conditions=source --import tsx bench/heap-by-type.ts [--connections 2000]
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import v8 from 'node:v8'
import { createHoldfast } from '@holdfast/server'

const { values } = parseArgs({ options: { connections: { type: 'string', default: '2000' } } })
const N = Number(values.connections)

function bySize(): Map<string, { size: number; count: number }> {
  ;(globalThis as { gc?: () => void }).gc?.()
  const snap = JSON.parse(readAll(v8.getHeapSnapshot())) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }
    nodes: number[]
    strings: string[]
  }
  const f = snap.snapshot.meta.node_fields
  const w = f.length
  const iType = f.indexOf('type')
  const iName = f.indexOf('name')
  const iSize = f.indexOf('self_size')
  const types = snap.snapshot.meta.node_types[0]
  const out = new Map<string, { size: number; count: number }>()
  for (let i = 0; i < snap.nodes.length; i += w) {
    const type = types[snap.nodes[i + iType] as number] as string
    const name = type === 'object' || type === 'closure' ? `${type}:${snap.strings[snap.nodes[i + iName] as number]}` : type
    const e = out.get(name) ?? { size: 0, count: 0 }
    e.size += snap.nodes[i + iSize] as number
    e.count++
    out.set(name, e)
  }
  return out
}

function readAll(stream: NodeJS.ReadableStream): string {
  const chunks: Buffer[] = []
  let c: string | Buffer | null
  while ((c = stream.read()) !== null) chunks.push(typeof c === 'string' ? Buffer.from(c) : c)
  return Buffer.concat(chunks).toString()
}

// HOLDFAST_TRANSPORT=uws: the same on the uWebSockets.js transport, where the heap is holdfast's own state alone.
const options = { logger: false as const, maxConnectionsPerIp: 1_000_000, connectRatePerIp: { perSecond: 1e6, burst: 1e6 } }
let port: number
if (process.env['HOLDFAST_TRANSPORT'] === 'uws') {
  port = await createHoldfast({ ...options, transport: 'uws' }).listen({ host: '127.0.0.1', port: 0 })
} else {
  const http = createServer()
  createHoldfast(options).attach(http)
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  port = (http.address() as AddressInfo).port
}
const before = bySize()
const client = fork(new URL('./idle-memory.ts', import.meta.url).pathname, ['--role', 'client', '--kind', 'holdfast', '--url', `ws://127.0.0.1:${port}/ws`, '--connections', String(N)], {
  execArgv: ['--conditions=source', '--import', 'tsx'],
})
await once(client, 'message')
await new Promise((r) => setTimeout(r, 500))
const after = bySize()
const rows = [...after].map(([k, v]) => ({ k, bytes: (v.size - (before.get(k)?.size ?? 0)) / N, count: (v.count - (before.get(k)?.count ?? 0)) / N }))
rows.sort((a, b) => b.bytes - a.bytes)
let total = 0
for (const r of rows) total += r.bytes
console.log(`heap growth per connection: ${total.toFixed(0)} B`)
for (const r of rows.slice(0, 30)) console.log(`${r.bytes.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(6)} objs  ${r.k}`)
client.kill('SIGKILL')
process.exit(0)
