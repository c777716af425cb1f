/**
 * Where a connection's heap goes: holds N idle holdfast connections (as in idle-memory.ts) in
 * this process, takes a heap snapshot before and after, and prints the constructors whose total
 * self size grew the most, per connection. A profiling aid for the memory target.
 *
 *   node --expose-gc --conditions=source --import tsx bench/heap-by-type.ts [--connections 2000] [--retainers]
 *
 * `--retainers` also lists the growth by what holds it (each object's first retainer and the
 * edge's name, up through arrays, maps and plain objects), to tell which field a kind of array or
 * object is. HOLDFAST_TRANSPORT=raw-ws measures a raw ws server instead, to compare with.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import v8 from 'node:v8'
import { createHoldfast } from '@holdfast/server'

const { values } = parseArgs({ options: { connections: { type: 'string', default: '2000' }, retainers: { type: 'boolean', default: false } } })
const N = Number(values.connections)

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } }
  nodes: number[]
  edges: number[]
  strings: string[]
}

function snapshot(): Snapshot {
  ;(globalThis as { gc?: () => void }).gc?.()
  return JSON.parse(readAll(v8.getHeapSnapshot())) as Snapshot
}

/**
 * Totals by type (objects and closures by constructor name); with `retainers`, each keyed also
 * by what holds it: the first
 * retainer's type and the edge's name, e.g. `array <- object:Hub.channels`.
 */
const CONTAINERS = new Set(['array', 'hidden', 'object:Map', 'object:Set', 'object:Array', 'object:Object', 'object:system / Context', 'closure:'])

function bySize(snap: Snapshot, retainers = false): Map<string, { size: number; count: number }> {
  const f = snap.snapshot.meta.node_fields
  const w = f.length
  const iType = f.indexOf('type')
  const iName = f.indexOf('name')
  const iSize = f.indexOf('self_size')
  const iEdges = f.indexOf('edge_count')
  const types = snap.snapshot.meta.node_types[0]
  const label = (i: number): string => {
    const type = types[snap.nodes[i + iType] as number] as string
    return type === 'object' || type === 'closure' ? `${type}:${snap.strings[snap.nodes[i + iName] as number]}` : type
  }
  let parent: Int32Array | undefined
  let parentEdge: Int32Array | undefined
  const ef = snap.snapshot.meta.edge_fields
  const ew = ef.length
  const eTypes = snap.snapshot.meta.edge_types[0]
  if (retainers) {
    // The first retainer of each node (its first incoming edge that is not weak or a shortcut).
    parent = new Int32Array(snap.nodes.length / w).fill(-1)
    parentEdge = new Int32Array(snap.nodes.length / w).fill(-1)
    let e = 0
    for (let i = 0; i < snap.nodes.length; i += w) {
      const n = snap.nodes[i + iEdges] as number
      for (let k = 0; k < n; k++, e += ew) {
        const et = eTypes[snap.edges[e] as number]
        if (et === 'weak' || et === 'shortcut') continue
        const to = (snap.edges[e + 2] as number) / w
        if (parent[to] === -1) {
          parent[to] = i
          parentEdge[to] = e
        }
      }
    }
  }
  const out = new Map<string, { size: number; count: number }>()
  for (let i = 0; i < snap.nodes.length; i += w) {
    let name = label(i)
    if (parent !== undefined && parentEdge !== undefined) {
      // Up the retainer chain through containers (arrays, maps, sets, plain objects) to the first
      // object with a name of its own, at most four steps: `array <- Map.table <- Hub.channels`.
      let at = i
      for (let step = 0; step < 4; step++) {
        const p = parent[at / w] as number
        if (p < 0) break
        const e = parentEdge[at / w] as number
        const et = eTypes[snap.edges[e] as number]
        const edgeName = et === 'element' || et === 'hidden' ? '' : (snap.strings[snap.edges[e + 1] as number] as string)
        // Slots of a table or an array are one key: `[]`.
        const en = edgeName === '' || /^\d+$/.test(edgeName) ? '[]' : `.${edgeName}`
        const pl = label(p)
        name = `${name} <- ${pl}${en}`
        if (!CONTAINERS.has(pl)) break
        at = p
      }
    }
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
const options = { logger: false as const, pingIntervalMs: 2000, maxConnectionsPerIp: 1_000_000, connectRatePerIp: { perSecond: 1e6, burst: 1e6 } }
let port: number
const raw = process.env['HOLDFAST_TRANSPORT'] === 'raw-ws'
if (raw) {
  // HOLDFAST_TRANSPORT=raw-ws: a raw ws server holding open sockets (idle-memory.ts's reference), to compare with.
  const { WebSocketServer } = await import('ws')
  const http = createServer()
  new WebSocketServer({ server: http, path: '/ws', clientTracking: true }).on('connection', (ws) => ws.on('message', () => {}))
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  port = (http.address() as AddressInfo).port
} else if (process.env['HOLDFAST_TRANSPORT'] === 'uws') {
  port = await createHoldfast({ ...options, transport: 'uws' }).listen({ host: '127.0.0.1', port: 0 })
} else {
  const http = createServer()
  createHoldfast(options).attach(http)
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  port = (http.address() as AddressInfo).port
}
let first: Snapshot | undefined = snapshot()
const before = bySize(first)
const heldBefore = values.retainers ? bySize(first, true) : undefined
first = undefined // not held while the second snapshot is taken
const client = fork(new URL('./idle-memory.ts', import.meta.url).pathname, ['--role', 'client', '--kind', raw ? 'ws' : 'holdfast', '--url', `ws://127.0.0.1:${port}/ws`, '--connections', String(N)], {
  execArgv: ['--conditions=source', '--import', 'tsx'],
})
await once(client, 'message')
// Past one ping interval (2 s): what an idle connection holds for good.
await new Promise((r) => setTimeout(r, 3500))
const second = snapshot()
const after = bySize(second)
const rows = [...after].map(([k, v]) => ({ k, bytes: (v.size - (before.get(k)?.size ?? 0)) / N, count: (v.count - (before.get(k)?.count ?? 0)) / N }))
rows.sort((a, b) => b.bytes - a.bytes)
let total = 0
for (const r of rows) total += r.bytes
console.log(`heap growth per connection: ${total.toFixed(0)} B`)
for (const r of rows.slice(0, 30)) console.log(`${r.bytes.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(6)} objs  ${r.k}`)
if (heldBefore !== undefined) {
  // Growth by what holds it (first retainer, up through containers): which field of which object the bytes hang from.
  const held = [...bySize(second, true)].map(([k, v]) => ({ k, bytes: (v.size - (heldBefore.get(k)?.size ?? 0)) / N, count: (v.count - (heldBefore.get(k)?.count ?? 0)) / N }))
  held.sort((a, b) => b.bytes - a.bytes)
  console.log('\ngrowth by first retainer, per connection:')
  for (const r of held.filter((h) => Math.abs(h.bytes) >= 2)) console.log(`${r.bytes.toFixed(0).padStart(6)} B  ${r.count.toFixed(2).padStart(6)} objs  ${r.k}`)
}
client.kill('SIGKILL')
process.exit(0)
