import { loadUws } from '@holdfast/server/internal'
import type { StartedServer } from '../types.js'

/**
 * uWebSockets.js pub/sub: `ws.subscribe(channel)` and `app.publish(channel, data)`, its native
 * fan-out (the message is framed once in C++ and written to every subscriber). Same adapter
 * protocol as the raw `ws` peer. maxBackpressure is 1 MiB, holdfast's default send-queue bound; uWS
 * skips a subscriber above it (the bench counts those as lost) where holdfast closes it.
 */
export async function startUws(): Promise<StartedServer> {
  const loaded = loadUws()
  if ('error' in loaded) throw new Error(`uWebSockets.js cannot be loaded on this platform: ${loaded.error}`)
  const { uws } = loaded
  const app = uws.App()
  const decoder = new TextDecoder()
  app.ws('/ws', {
    compression: uws.DISABLED,
    maxPayloadLength: 1024 * 1024,
    maxBackpressure: 1024 * 1024,
    idleTimeout: 120,
    message: (ws, buf) => {
      let msg: { op?: unknown; channel?: unknown; data?: unknown }
      try {
        msg = JSON.parse(decoder.decode(buf)) as typeof msg
      } catch {
        ws.end(1003, 'bad json')
        return
      }
      if (typeof msg.channel !== 'string') return
      if (msg.op === 'sub') {
        ws.subscribe(msg.channel)
        ws.send(JSON.stringify({ op: 'subok', channel: msg.channel }))
      } else if (msg.op === 'pub') app.publish(msg.channel, JSON.stringify(msg.data))
    },
  })
  const port = await new Promise<number>((resolve, reject) => {
    app.listen('127.0.0.1', 0, (token) => (token === false ? reject(new Error('uWebSockets.js could not listen')) : resolve(uws.us_socket_local_port(token))))
  })
  return { url: `ws://127.0.0.1:${port}/ws` }
}
