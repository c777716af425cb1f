import type { HoldfastError, StreamPosition } from '@holdfast/protocol'
import type { StandardSchemaV1 } from '@standard-schema/spec'
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
  /**
   * Once, after a client with a `storage` starts (or takes over the commands a closed tab left):
   * the stored commands put back in the queue, oldest first. They are sent before anything newer.
   */
  restored?: readonly RestoredCommand[]
  /** With `restored`: stored commands that will not be sent, and why. */
  discarded?: readonly DiscardedCommand[]
}

/** A publish or rpc found in storage (a previous page or process issued it and never saw its ack). */
export interface StoredCommandInfo {
  type: 'publish' | 'rpc'
  /** publish only. */
  channel?: string
  /** rpc only. */
  method?: string
  data: unknown
  msgId: string
  /** When it was issued (ms since the epoch). */
  createdAt: number
  /** It went on the wire before: the server may already have it (its dedupe makes the resend safe). */
  sent: boolean
}

export interface RestoredCommand extends StoredCommandInfo {
  /**
   * Settles like the original call would have: the publish result or the rpc's data, or a
   * `HoldfastError`. Rejections nobody listens to are not reported as unhandled.
   */
  readonly result: Promise<unknown>
  /** Take it out of the queue and storage (`result` rejects with `dropped`). If it was sent, the server may still perform it. */
  drop(): void
}

export interface DiscardedCommand extends StoredCommandInfo {
  /**
   * expired: past its deadline (`timeoutMs` / `commandTimeoutMs`, counted from when it was issued);
   * unknown_outcome: sent longer ago than `idempotencyWindowMs`, so a resend could be performed twice;
   * queue_full: the restored commands exceed `maxQueuedCommands` / `maxQueuedBytes` (the newest go).
   */
  reason: 'expired' | 'unknown_outcome' | 'queue_full'
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

export interface SubscribeOptions<T = unknown> {
  /**
   * A Standard Schema (zod, valibot, arktype...) that each publication's data must pass before it
   * is delivered, synchronously; its output is the `data` of the `publication` event. Data that
   * fails is skipped and reported as an `error` event (`bad_request`) of the subscription.
   * @default none: data is delivered as it arrives
   */
  schema?: StandardSchemaV1<unknown, T>
}

export interface HistoryOptions extends CallOptions {
  /** Publications after this position; without it, the latest ones. */
  since?: StreamPosition
  limit?: number
  /** Newest first. */
  reverse?: boolean
}
