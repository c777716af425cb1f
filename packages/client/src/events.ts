import type { HoldfastError, StreamPosition } from '@holdfast/protocol'
import type { StateChange, StateReason } from './state.js'
import type { Subscription } from './subscription.js'

export interface ConnectingEvent {
  url: string
  /** Consecutive failed attempts before this one (0: first attempt, or the last connection was stable). */
  attempt: number
}

export interface ConnectedEvent {
  url: string
  /** Connection id given by the server. */
  client: string
  session: string
  /** true: the session of the previous connection was resumed. */
  resumed: boolean
  node: string
  data?: unknown
}

export interface DisconnectedEvent {
  reason: StateReason
  /** Delay of the scheduled reconnect attempt, or null when none is scheduled (offline, closed). */
  reconnectInMs: number | null
}

export interface QueueEvent {
  /** Commands waiting for an ack (queued offline or in flight). */
  size: number
  bytes: number
}

export interface ClientEvents {
  state: StateChange
  connecting: ConnectingEvent
  connected: ConnectedEvent
  disconnected: DisconnectedEvent
  /** A message for this client only (server API `send`). */
  message: { data: unknown }
  error: HoldfastError
  queue: QueueEvent
  /** The server subscribed this client to a channel; attach listeners in this event. */
  subscription: Subscription
}

export interface CallOptions {
  /** Overall deadline for this call, queued time included. @default the client's `commandTimeoutMs` */
  timeoutMs?: number
}

export interface HistoryOptions extends CallOptions {
  /** Publications after this position; without it, the latest ones. */
  since?: StreamPosition
  limit?: number
  /** Newest first. */
  reverse?: boolean
}
