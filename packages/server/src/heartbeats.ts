/**
 * Heartbeats: one timer wheel visits every connection when something is due for it: the connect
 * command (connect timeout), the next ping, the pong deadline, or the token's expiry. The ping is
 * encoded once per codec; a pong is handled here whatever the rate limits say.
 *
 * The wheel fires up to one tick late, so pings are aimed one tick early: a ping goes out at most
 * `pingIntervalMs` after the previous one (or after the connect reply), never later, which is what
 * a client's watchdog counts on. A silent peer is closed `pongTimeoutMs` after the ping, at most
 * one tick late: in all, within `pingIntervalMs + pongTimeoutMs + tick` of its last pong
 * (docs/protocol.md). The tick is 250 ms, or a quarter of a ping interval under a second.
 */
import { CloseCodes, type Codec } from '@holdfast/protocol'
import { ConnState, type Connection } from './connection.js'
import type { NodeContext } from './node-context.js'
import { closeSlowConsumer } from './slow-consumer.js'
import { TimerWheel } from './timer-wheel.js'

/** The wheel's resolution: a deadline is met at most this late. */
export const HEARTBEAT_TICK_MS = 250

/** The wheel's tick for a ping interval: 250 ms, finer for intervals under a second (never under 10 ms). */
export function heartbeatTick(pingIntervalMs: number): number {
  return Math.max(10, Math.min(HEARTBEAT_TICK_MS, Math.floor(pingIntervalMs / 4)))
}

/**
 * The heartbeat clock: whole milliseconds since the process started, monotonic (a wall-clock step
 * moves no ping). A small integer is stored in the connection's field itself; a fractional or
 * epoch-sized number would cost a 16-byte box per field, three per connection.
 */
export function monotonicMs(): number {
  return Math.floor(performance.now())
}

export class Heartbeats {
  readonly #ctx: Pick<NodeContext, 'options' | 'counters' | 'log'> & Partial<Pick<NodeContext, 'backend'>>
  readonly #wheel: TimerWheel<Connection>
  readonly #pings = new Map<Codec, Uint8Array>()
  /** The wheel's tick; a ping is aimed this much before it is due, so the wheel's lateness never makes it late. */
  readonly #early: number
  /** Ping times and the wheel run on this clock; token expiries are wall-clock times (Date.now()). */
  readonly #clock: () => number

  /** `clock`: the heartbeats' monotonic clock in ms (tests pass their fake clock). */
  constructor(ctx: Pick<NodeContext, 'options' | 'counters' | 'log'> & Partial<Pick<NodeContext, 'backend'>>, clock: () => number = monotonicMs) {
    this.#ctx = ctx
    this.#clock = clock
    this.#early = heartbeatTick(ctx.options.pingIntervalMs)
    this.#wheel = new TimerWheel<Connection>({
      tickMs: this.#early,
      now: clock,
      onExpire: (conn) => this.#visit(conn),
      onError: (err) => ctx.log?.error({ err }, 'heartbeat failed'),
    })
    this.#wheel.start()
  }

  /** A new connection: its connect command is due within connectTimeoutMs. */
  admitted(conn: Connection): void {
    this.#wheel.schedule(conn, this.#ctx.options.connectTimeoutMs)
  }

  /** The connect command succeeded: pings start, one interval from now. */
  connected(conn: Connection): void {
    const now = this.#clock()
    conn.nextPingAt = now + this.#ctx.options.pingIntervalMs
    this.#wheel.schedule(conn, this.#nextWake(conn, now))
  }

  /**
   * A pong arrived. The wheel entry, parked at the pong deadline, moves to the next ping: with a
   * ping interval shorter than the pong timeout, waiting for the deadline would stretch the ping
   * period past what the connect reply advertised, and a client watchdog would fire.
   */
  pong(conn: Connection): void {
    if (!conn.awaitingPong) return
    conn.awaitingPong = false
    const now = this.#clock()
    this.#ctx.counters.observe('ping_rtt_ms', now - conn.pingSentAt)
    conn.nextPingAt = conn.pingSentAt + this.#ctx.options.pingIntervalMs
    // Often the last frame for a while: the socket gives back what reading grew.
    conn.socket.compact?.()
    if (conn.state === ConnState.Connected) this.#wheel.schedule(conn, this.#nextWake(conn, now))
  }

  /** The token expiry moved (refresh): make sure the wheel wakes for it. */
  reschedule(conn: Connection): void {
    if (conn.state === ConnState.Connected) this.#wheel.schedule(conn, this.#nextWake(conn, this.#clock()))
  }

  /** The connection closed. */
  cancel(conn: Connection): void {
    this.#wheel.cancel(conn)
  }

  stop(): void {
    this.#wheel.stop()
  }

  /** The ping message in a codec, encoded once. */
  #pingBytes(codec: Codec): Uint8Array {
    let b = this.#pings.get(codec)
    if (b === undefined) {
      b = codec.encode({ type: 'ping' })
      this.#pings.set(codec, b)
    }
    return b
  }

  /** The delay until the connection's next deadline: its ping or pong deadline (at `now` on the heartbeat clock), or its token's expiry (wall clock). */
  #nextWake(conn: Connection, now: number): number {
    const due = conn.awaitingPong ? conn.pingSentAt + this.#ctx.options.pongTimeoutMs : conn.nextPingAt - this.#early
    const delay = conn.expiresAt > 0 ? Math.min(due - now, conn.expiresAt - Date.now()) : due - now
    return Math.max(0, delay)
  }

  /** One timer-wheel visit: connect timeout, token expiry, pong deadline or the next ping. */
  #visit(conn: Connection): void {
    if (conn.state === ConnState.Closed) return
    const { options, counters } = this.#ctx
    if (conn.state === ConnState.Handshake) {
      counters.inc('connect_timeouts')
      conn.close('connect_timeout', 'no connect command in time')
      return
    }
    const now = this.#clock()
    const wall = Date.now()
    if (conn.expiresAt > 0 && wall >= conn.expiresAt) {
      // A backend-given expiry: the backend's refresh runs first (the wheel comes back at the expiry).
      if (this.#ctx.backend?.refreshDue(conn, wall, () => this.reschedule(conn)) === true) {
        this.#wheel.schedule(conn, this.#nextWake(conn, now))
        return
      }
      conn.close('token_expired', 'token expired; refresh it before expiry')
      return
    }
    if (conn.awaitingPong) {
      if (now >= conn.pingSentAt + options.pongTimeoutMs) {
        counters.inc('heartbeat_timeouts')
        // The peer is silent (maybe half-open): do not wait for a closing handshake.
        conn.closeWith(CloseCodes.heartbeat_timeout.code, 'no pong in time')
        conn.terminate(CloseCodes.heartbeat_timeout.code, 'no pong in time')
        return
      }
    } else if (now >= conn.nextPingAt - this.#early) {
      // A socket that holds bytes and took none for a whole ping interval is not being read (a
      // client may answer pings without reading): what it holds would be held for good.
      const buffered = conn.socket.bufferedAmount
      const taken = conn.bytesWritten - buffered
      if (buffered > 0 && taken <= conn.takenAtPing) {
        closeSlowConsumer(counters, conn)
        return
      }
      conn.takenAtPing = taken
      // Rate buckets refilled since the last command go: an idle connection holds none.
      conn.releaseIdle(performance.now())
      conn.awaitingPong = true
      conn.pingSentAt = now
      conn.enqueue(this.#pingBytes(conn.codec))
    }
    this.#wheel.schedule(conn, this.#nextWake(conn, now))
  }
}
