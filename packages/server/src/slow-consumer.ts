import { CloseCodes } from '@holdfast/protocol'
import type { Connection } from './connection.js'
import type { Counters } from './counters.js'

/**
 * A connection that does not read what it is sent (its send queue overflowed, or its socket took
 * nothing for a whole ping interval) is closed; the client reconnects and recovers what it missed.
 */
export function closeSlowConsumer(counters: Counters, conn: Connection): void {
  counters.inc('slow_consumer_closes')
  conn.log?.info({ buffered: conn.socket.bufferedAmount }, 'slow consumer closed')
  // Its buffers are full, so the closing handshake may never complete: do not hold the socket
  // (and its megabyte of backlog) for ws's 30 s close timeout.
  conn.closeAndDrop(CloseCodes.slow_consumer.code, 'send queue overflow', true)
}
