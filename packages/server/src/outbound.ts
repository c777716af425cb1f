/**
 * Write coalescing. Everything a connection is sent in one event-loop turn (replies, a burst of
 * publications) is joined into one WebSocket frame and written once, after the turn, from a
 * single setImmediate shared by all connections — not one timer or one write per message.
 */

export interface Flushable {
  /** Set by the scheduler while the connection waits in the dirty list. */
  queuedForFlush: boolean
  flush(): void
}

const dirty: Flushable[] = []
let scheduled = false

function flushAll(): void {
  scheduled = false
  // Flushing may enqueue more (a slow-consumer close sends a disconnect push); those go to the next turn.
  const batch = dirty.splice(0, dirty.length)
  for (const c of batch) {
    c.queuedForFlush = false
    c.flush()
  }
}

export function markDirty(c: Flushable): void {
  if (c.queuedForFlush) return
  c.queuedForFlush = true
  dirty.push(c)
  if (!scheduled) {
    scheduled = true
    setImmediate(flushAll)
  }
}
