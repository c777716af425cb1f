/**
 * The process a bench-started server runs in (one per server, so its CPU and memory can be read
 * from /proc without the bench's own load in them). Forked with `--expose-gc` by bench-server.ts,
 * with HOLDFAST_BENCH_SERVER naming the server; it answers `{type:'listening', url}` once it listens and `gc-done` after
 * a `gc` request, so memory is read with the garbage collected in every server alike.
 */
import type { ServerKind, StartedServer } from '../types.js'

export type { StartedServer } from '../types.js'

export type ToServer = { type: 'gc' }
export type FromServer = { type: 'listening'; url: string } | { type: 'gc-done' } | { type: 'error'; message: string }

async function start(kind: ServerKind): Promise<StartedServer> {
  switch (kind) {
    case 'holdfast':
      return (await import('./holdfast-server.js')).startHoldfast('ws')
    case 'holdfast-uws':
      return (await import('./holdfast-server.js')).startHoldfast('uws')
    case 'ws':
      return (await import('./ws-server.js')).startWs()
    case 'socketio':
      return (await import('./socketio-server.js')).startSocketIo()
    case 'uws':
      return (await import('./uws-server.js')).startUws()
  }
}

function send(msg: FromServer): void {
  process.send?.(msg)
}

// Only when forked as a server process; importing this module for its types must not start one.
if (process.send !== undefined && process.env['HOLDFAST_BENCH_SERVER'] !== undefined) {
  const kind = process.env['HOLDFAST_BENCH_SERVER'] as ServerKind
  process.on('message', (msg: ToServer) => {
    if (msg.type !== 'gc') return
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    gc?.()
    send({ type: 'gc-done' })
  })
  process.on('disconnect', () => process.exit(0))
  // An orderly exit on the bench's SIGTERM, so that --cpu-prof and similar flags write their output.
  process.on('SIGTERM', () => process.exit(0))
  start(kind).then(
    (s) => send({ type: 'listening', url: s.url }),
    (err: unknown) => {
      send({ type: 'error', message: err instanceof Error ? err.message : String(err) })
      process.exit(1)
    },
  )
}
