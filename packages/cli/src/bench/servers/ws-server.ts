import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { StartedServer } from '../types.js'

/**
 * Raw `ws`, written the way most applications write their first fan-out: a map from channel to
 * the set of subscribed sockets, and `ws.send` to each subscriber. The publication's JSON is built
 * once per publication (not per subscriber), but `send` of a string still converts and frames it
 * per socket: that per-socket cost is exactly what "naive send loop" means, and it is ws's own API.
 *
 * The adapter protocol (shared with the uWebSockets.js peer):
 *   client -> `{"op":"sub","channel":C}`             server -> `{"op":"subok","channel":C}`
 *   client -> `{"op":"pub","channel":C,"data":D}`    server -> D (as JSON) to every subscriber of C
 */
export async function startWs(): Promise<StartedServer> {
  const { WebSocketServer } = await import('ws')
  type Socket = import('ws').WebSocket
  const http = createServer()
  const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false, clientTracking: false })
  const channels = new Map<string, Set<Socket>>()
  wss.on('connection', (ws) => {
    const mine: string[] = []
    ws.on('message', (raw) => {
      let msg: { op?: unknown; channel?: unknown; data?: unknown }
      try {
        msg = JSON.parse(String(raw)) as typeof msg
      } catch {
        ws.close(1003, 'bad json')
        return
      }
      if (typeof msg.channel !== 'string') return
      if (msg.op === 'sub') {
        let set = channels.get(msg.channel)
        if (set === undefined) channels.set(msg.channel, (set = new Set()))
        set.add(ws)
        mine.push(msg.channel)
        ws.send(JSON.stringify({ op: 'subok', channel: msg.channel }))
      } else if (msg.op === 'pub') {
        const set = channels.get(msg.channel)
        if (set === undefined) return
        const text = JSON.stringify(msg.data)
        for (const s of set) s.send(text)
      }
    })
    ws.on('close', () => {
      for (const ch of mine) channels.get(ch)?.delete(ws)
    })
  })
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = http.address() as AddressInfo
  return { url: `ws://127.0.0.1:${port}/ws` }
}
