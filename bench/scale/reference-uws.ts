/**
 * The scale bench's reference: raw uWebSockets.js doing the least a server of the same load can
 * do, in one process of several that share the port (uWS listens with SO_REUSEPORT on Linux, so
 * the kernel spreads the connections as it does for `holdfast serve --transport uws --workers N`).
 *
 * It answers the generator's two commands with a bare reply (no session, no auth, no channel
 * stream), subscribes every socket to the one topic, and publishes what the parent sends over IPC
 * (`{ type: 'publish', frame }`) with uWS's own pub/sub. Heartbeats are uWS's built-in WebSocket
 * pings (`sendPingsAutomatically`), which the generator answers as it answers holdfast's.
 *
 * Started by bench/scale.ts with HOLDFAST_SCALE_REFERENCE={"port":P,"topic":"..."}; prints
 * `listening <port>` once listening.
 */
import { createRequire } from 'node:module'
import type * as Uws from '@trufflesuite/uws-js-unofficial'

interface ReferenceConfig {
  port: number
  topic: string
  /** Seconds without traffic before uWS pings a socket (a multiple of 4). */
  idleTimeout: number
}

const raw = process.env.HOLDFAST_SCALE_REFERENCE
if (raw === undefined || process.send === undefined) throw new Error('reference: started without its config (fork it from bench/scale.ts)')
const cfg = JSON.parse(raw) as ReferenceConfig
// Resolved from the repository's node_modules whichever folder this bundle was written to.
const uws = createRequire(`${process.cwd()}/package.json`)('@trufflesuite/uws-js-unofficial') as typeof Uws
const decoder = new TextDecoder()
const ID = /"id":(\d+)/

const app = uws.App().ws('/ws', {
  idleTimeout: cfg.idleTimeout,
  sendPingsAutomatically: true,
  maxPayloadLength: 65536,
  open: (ws) => {
    ws.subscribe(cfg.topic)
  },
  message: (ws, message) => {
    const id = ID.exec(decoder.decode(message))?.[1]
    if (id !== undefined) ws.send(`{"id":${id},"result":{"offset":0}}`, false)
  },
})

app.listen('127.0.0.1', cfg.port, (token) => {
  if (token === false) {
    process.stderr.write(`reference: could not listen on ${cfg.port}\n`)
    process.exit(1)
  }
  process.send?.({ type: 'listening', port: uws.us_socket_local_port(token) })
})

process.on('message', (m: { type: string; frame?: string }) => {
  if (m.type === 'publish' && m.frame !== undefined) app.publish(cfg.topic, m.frame, false)
})
process.on('disconnect', () => process.exit(0))
