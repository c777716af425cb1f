import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHoldfast, type TransportName } from '@holdfast/server'
import type { StartedServer } from '../types.js'

/**
 * holdfast as an application embeds it: `createHoldfast` attached to a node:http server (or, with
 * the uws transport, listening with uWebSockets.js), memory
 * engine, every other option at its default except the per-IP and per-connection admission limits,
 * which exist to stop abuse and would refuse the bench's own ramp (thousands of connections from a
 * few loopback addresses) and its publisher (one connection publishing hundreds per second).
 */
export async function startHoldfast(transport: TransportName): Promise<StartedServer> {
  const unlimited = { perSecond: 1_000_000, burst: 1_000_000 }
  const holdfast = createHoldfast({
    logger: false,
    maxConnections: 1_000_000,
    maxConnectionsPerIp: 1_000_000,
    connectRatePerIp: unlimited,
    commandRate: unlimited,
    transport,
  })
  if (transport === 'uws') {
    // uWebSockets.js owns its listening socket: no node:http server in front of it.
    const port = await holdfast.listen({ host: '127.0.0.1', port: 0 })
    await holdfast.ready()
    return { url: `ws://127.0.0.1:${port}/ws` }
  }
  const http = createServer()
  holdfast.attach(http)
  await holdfast.ready()
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = http.address() as AddressInfo
  return { url: `ws://127.0.0.1:${port}/ws` }
}
