import { closeCodeName } from '@holdfast/protocol/internal'
import type { CloseCodeName } from '@holdfast/protocol'

export type ConnectionState = 'disconnected' | 'connecting' | 'connected' | 'closed'

/** Why the state changed: a close code from the protocol's table (or a local one), its name and a message. */
export interface StateReason {
  code: number
  /** The code's name in `CloseCodes`, or 'unknown' for a code outside the table. */
  name: CloseCodeName | 'unknown'
  message: string
}

export interface StateChange {
  from: ConnectionState
  to: ConnectionState
  reason: StateReason
}

/**
 * Every allowed transition. The client never keeps "isConnecting"/"isClosed" flags: its state is one
 * value and it moves only along these edges, so an impossible combination cannot be represented.
 * - disconnected: not connected; a reconnect may be scheduled (or it waits for `online`/`connect()`).
 * - connecting: a socket is opening or the connect reply is awaited.
 * - connected: the connect reply arrived; commands flow.
 * - closed: stopped by `close()` or by a close code whose advice is none/stop; only `connect()` leaves it.
 */
export const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  disconnected: ['connecting', 'closed'],
  connecting: ['connected', 'disconnected', 'closed'],
  connected: ['disconnected', 'closed'],
  closed: ['connecting'],
}

export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return TRANSITIONS[from].includes(to)
}

/** A reason built from a close code; the name comes from the protocol's table. */
export function reasonFor(code: number, message: string): StateReason {
  return { code, name: closeCodeName(code) ?? 'unknown', message }
}

export class StateMachine {
  #state: ConnectionState

  readonly #onChange: (change: StateChange) => void

  constructor(onChange: (change: StateChange) => void, initial: ConnectionState = 'disconnected') {
    this.#onChange = onChange
    this.#state = initial
  }

  get state(): ConnectionState {
    return this.#state
  }

  /** Move along an edge of `TRANSITIONS`; any other move is a bug in the client and throws. */
  transition(to: ConnectionState, reason: StateReason): void {
    const from = this.#state
    if (!canTransition(from, to)) throw new Error(`holdfast client: illegal state transition ${from} -> ${to}`)
    this.#state = to
    this.#onChange({ from, to, reason })
  }
}
