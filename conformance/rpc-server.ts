// The RPC server of the conformance run: `holdfast serve` registers no RPC methods (an app does,
// through `onRpc`), so the Python client's RPC checks talk to this small gateway.
//   node --conditions=source --import tsx conformance/rpc-server.ts   → prints its WebSocket URL
import { HoldfastError } from '@holdfast/protocol'
import { createHoldfast, type Holdfast } from '@holdfast/server'

export interface RpcServer {
  url: string
  holdfast: Holdfast
  close(): Promise<void>
}

export async function startRpcServer(): Promise<RpcServer> {
  const holdfast = createHoldfast({ logger: false, processMetrics: false })
  // Per counter name, so that checks running at once do not share one.
  const calls = new Map<unknown, number>()
  holdfast.onRpc('echo', (_ctx, data) => data)
  holdfast.onRpc('count', (_ctx, name) => {
    calls.set(name, (calls.get(name) ?? 0) + 1)
    return { calls: calls.get(name) }
  })
  holdfast.onRpc('slow', (_ctx, data) => new Promise((resolve) => setTimeout(resolve, 1000, data)))
  holdfast.onRpc('refuse', () => {
    throw new HoldfastError('permission_denied', 'refused on purpose')
  })
  const port = await holdfast.listen({ host: '127.0.0.1', port: 0 })
  return { url: `ws://127.0.0.1:${port}/ws`, holdfast, close: () => holdfast.close({ drainMs: 0 }) }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startRpcServer()
  process.stdout.write(`${server.url}\n`)
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)))
}
