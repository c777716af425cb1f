/**
 * Drain: close a node's connections with `restart`, spread evenly over the drain window so their
 * clients reconnect elsewhere without a storm, then wait a bounded time for the closing handshakes
 * and terminate the stragglers.
 */
import { CloseCodes } from '@holdfast/protocol'
import type { Connection } from './connection.js'

const STEP_MS = 20
/** How long the closing handshakes get after the last close, before their sockets are dropped. */
const HANDSHAKE_WAIT_MS = 2000

/**
 * Close every connection of `connections` over `drainMs` and resolve when none is left;
 * `terminated` is told of each connection dropped at the deadline (its socket reports the close later).
 */
export async function drainConnections(connections: ReadonlySet<Connection>, drainMs: number, terminated: (conn: Connection) => void): Promise<void> {
  const conns = [...connections]
  // Shuffle so that a slow tail is not always the same clients.
  for (let i = conns.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[conns[i], conns[j]] = [conns[j] as Connection, conns[i] as Connection]
  }
  const start = performance.now()
  let next = 0
  // After a stall (a busy event loop) the schedule is behind; catching up in one burst would be
  // the very storm the drain exists to avoid, so no tick closes more than twice its share.
  const perTick = drainMs <= 0 ? conns.length : Math.max(1, Math.ceil((2 * conns.length * STEP_MS) / drainMs))
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsed = performance.now() - start
      const due = drainMs <= 0 ? conns.length : Math.min(conns.length, Math.ceil(((elapsed + STEP_MS) / drainMs) * conns.length), next + perTick)
      for (; next < due; next++) (conns[next] as Connection).close('restart', 'node is draining')
      if (next >= conns.length) resolve()
      else setTimeout(tick, STEP_MS)
    }
    tick()
  })
  // Wait for the closing handshakes, but not forever.
  const deadline = performance.now() + HANDSHAKE_WAIT_MS
  while (connections.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, STEP_MS))
  for (const conn of [...connections]) {
    conn.terminate(CloseCodes.restart.code, 'drain deadline')
    terminated(conn)
  }
}
