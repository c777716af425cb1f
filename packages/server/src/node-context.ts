/**
 * What a gateway node's parts share, and a map of those parts.
 *
 * `gateway.ts` builds one `NodeContext` and wires the parts together; it keeps only that wiring and
 * the public API (`createHoldfast()` returns it). Each concern lives in a file named after it and
 * depends on this interface, never on the gateway: `admission.ts` takes an upgrade from any
 * transport to a connection (draining and node limits, origin, per-address limits, the token in
 * the request); `commands.ts` decodes a connection's frames and runs its commands (rate limits,
 * ordering, connect and refresh, publish, RPC, reads); `subscriptions.ts` subscribes and
 * unsubscribes connections (client and server initiative); `heartbeats.ts` owns the timer wheel
 * (connect timeout, pings and pongs, token expiry); `presence.ts` joins, leaves and refreshes
 * presence; `lifecycle.ts` records a connection connected and closed (session table, events, hooks,
 * counts); `control-messages.ts` acts on the engine's cross-node control messages (takeover,
 * disconnect, server subscribe/unsubscribe, messages); `drain.ts` closes a node's connections
 * spread over the drain window; `slow-consumer.ts` closes a connection that does not read;
 * `streams.ts` publishes to the engine (durability, timing, counts) and reads history pages;
 * `hooks.ts` runs the application's hooks; `auth/authenticate.ts` verifies tokens. Below these
 * sit `connection.ts` (one connection: send queue, close), `hub.ts` (channel table, fan-out,
 * recovery) and the engine (`engine/`).
 */
import type { Logger } from 'pino'
import type { AuthResult } from './auth/types.js'
import type { Connection } from './connection.js'
import type { Counters } from './counters.js'
import type { Engine, PublishOptions, PublishOutcome } from './engine/engine.js'
import type { HookRunner } from './hooks.js'
import type { Hub } from './hub.js'
import type { KeyedBuckets } from './limits/keyed-buckets.js'
import type { Metrics } from './metrics.js'
import type { ResolvedChannelOptions, ResolvedOptions } from './options.js'
import type { RpcRouter } from './rpc-router.js'
import type { SessionSigner } from './session.js'
import type { Tracing } from './tracing.js'
import type { ChannelGrant } from './auth/channel-token.js'
import type { GatewayBackend } from './backend/gateway-backend.js'
import type { UpgradeRequest } from './transport/transport.js'

/** The state and services of one gateway node that its parts need, and nothing else of the gateway. */
export interface NodeContext {
  readonly options: ResolvedOptions
  readonly counters: Counters
  readonly metrics: Metrics
  readonly log: Logger | undefined
  readonly tracing: Tracing
  readonly engine: Engine
  readonly hub: Hub
  readonly sessions: SessionSigner
  readonly rpc: RpcRouter
  /** Message ids per user (or anonymous session) within the idempotency window. */
  readonly messageIds: KeyedBuckets
  /** Every connection of this node, from its upgrade to its close. */
  readonly connections: Set<Connection>
  /** session id → the connection holding it on this node. */
  readonly bySession: Map<string, Connection>
  /** Clock skew allowed past a token's `exp` (the JWT verifier's tolerance; 0 with an authenticate hook). */
  readonly expiryGraceMs: number
  /** Options of the namespace a channel belongs to. */
  channelOptions(channel: string): ResolvedChannelOptions
  /** Verify a token with the configured authenticate hook or JWT verifier (`unauthorized`/`token_expired` when refused). */
  authenticate(token: string | undefined, req: UpgradeRequest | undefined): Promise<AuthResult>
  /** Publish to a channel's stream: the namespace's durability applied, timed to fan-out, failures counted. */
  publish(channel: string, data: unknown, opts: PublishOptions): Promise<PublishOutcome>
  /** Run an application hook: what it throws is logged and counted, never propagated. */
  readonly hook: HookRunner
  /** The application backend: proxy and webhooks when configured (backend/gateway-backend.ts). */
  readonly backend: GatewayBackend
  /** Checks channel tokens (subscribe `token`, `sub_refresh`); undefined when no key is configured. */
  readonly channelToken: ((token: string, user: string, channel: string) => Promise<ChannelGrant>) | undefined
}
