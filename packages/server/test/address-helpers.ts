/** Shared by the client-address and PROXY protocol tests. */
import { once } from 'node:events'
import type WebSocket from 'ws'
import type { Gateway } from '../src/gateway.js'

/** Wait for `ws` to open, send the connect command, and return the address the gateway gave the connection (its `connect` event). */
export async function connectedAddress(gw: Gateway, ws: WebSocket): Promise<string> {
  const seen = once(gw, 'connect') as Promise<[{ ip: string }]>
  try {
    await once(ws, 'open')
    ws.send(JSON.stringify({ id: 1, type: 'connect', version: 1 }))
    const [info] = await seen
    return info.ip
  } finally {
    ws.terminate()
  }
}
