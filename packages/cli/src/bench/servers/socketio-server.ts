import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { StartedServer } from '../types.js'

/**
 * Socket.IO 4.8 as its documentation recommends for pub/sub: rooms as channels. The websocket
 * transport only (no long-polling upgrade dance), no per-message compression (as for every server
 * here). `sub` joins a room and acknowledges; `pub` emits the data to the room, which Socket.IO
 * encodes once and writes to each member.
 */
export async function startSocketIo(): Promise<StartedServer> {
  // An optional peer of the CLI: only the comparison needs it.
  const { Server } = await import('socket.io').catch((err: unknown) => {
    throw new Error(`the Socket.IO peer needs socket.io, an optional package: npm install socket.io (${(err as Error).message.split('\n')[0]})`)
  })
  const http = createServer()
  const io = new Server(http, { transports: ['websocket'], serveClient: false, perMessageDeflate: false, httpCompression: false })
  io.on('connection', (socket) => {
    socket.on('sub', (channel: unknown, ack: unknown) => {
      if (typeof channel !== 'string') return
      void socket.join(channel)
      if (typeof ack === 'function') (ack as () => void)()
    })
    socket.on('pub', (msg: { channel?: unknown; data?: unknown }) => {
      if (typeof msg?.channel === 'string') io.to(msg.channel).emit('m', msg.data)
    })
  })
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = http.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}` }
}
