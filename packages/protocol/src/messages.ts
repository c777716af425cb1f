/**
 * Wire messages. Every message is a flat object:
 * - client commands carry `id` (a positive integer, unique per connection) and `type`;
 * - the client's `pong` answers a server `ping` push and is the only client message without `id`;
 * - server replies carry the command's `id` and either `result` or `error`;
 * - server pushes carry `type` and no `id`.
 * A frame holds one or more messages (JSON: one per line; MessagePack: concatenated values).
 */

export const PROTOCOL_VERSION = 1

/** WebSocket subprotocols. A client that offers none speaks JSON. */
export const Subprotocols = {
  json: 'holdfast.v1.json',
  msgpack: 'holdfast.v1.msgpack',
} as const

/** A position in a channel stream: the offset of the last publication seen, inside an epoch. */
export interface StreamPosition {
  offset: number
  epoch: string
}

/** Who is behind a connection, as shown in presence and join/leave. */
export interface ClientInfo {
  client: string
  user: string
  info?: unknown
}

export interface Publication {
  offset: number
  data: unknown
  /** Publisher, when the publication came from a client. */
  info?: ClientInfo
}

// ---------------------------------------------------------------- commands

export interface ConnectCommand {
  id: number
  type: 'connect'
  version: number
  token?: string
  /** Resume a session issued by an earlier connect result. */
  session?: { id: string; token: string }
  name?: string
  data?: unknown
}

export interface SubscribeCommand {
  id: number
  type: 'subscribe'
  channel: string
  /** The last position the client delivered; the server replays what came after it. */
  recover?: StreamPosition
  /** Passed to the backend proxy's subscribe (docs/proxy.md). */
  data?: unknown
  /** A channel token (JWT with `sub`, `channel`, `exp`): subscribe where the rules alone would refuse. */
  token?: string
}

export interface UnsubscribeCommand {
  id: number
  type: 'unsubscribe'
  channel: string
}

export interface PublishCommand {
  id: number
  type: 'publish'
  channel: string
  data: unknown
  /** Client-generated idempotency id; a retry with the same id is acked again, not republished. */
  msgId: string
}

export interface RpcCommand {
  id: number
  type: 'rpc'
  method: string
  data?: unknown
  msgId: string
}

export interface PresenceCommand {
  id: number
  type: 'presence'
  channel: string
}

export interface PresenceStatsCommand {
  id: number
  type: 'presence_stats'
  channel: string
}

export interface HistoryCommand {
  id: number
  type: 'history'
  channel: string
  /** Publications after this position; without it, the latest ones. */
  since?: StreamPosition
  limit?: number
  reverse?: boolean
}

export interface PingCommand {
  id: number
  type: 'ping'
}

export interface RefreshCommand {
  id: number
  type: 'refresh'
  token: string
}

/** A new channel token for a subscription made with one, before the old one expires. */
export interface SubRefreshCommand {
  id: number
  type: 'sub_refresh'
  channel: string
  token: string
}

export type Command =
  | ConnectCommand
  | SubscribeCommand
  | UnsubscribeCommand
  | PublishCommand
  | RpcCommand
  | PresenceCommand
  | PresenceStatsCommand
  | HistoryCommand
  | PingCommand
  | RefreshCommand
  | SubRefreshCommand

export type CommandType = Command['type']

/** The answer to a server `ping` push. */
export interface PongMessage {
  type: 'pong'
}

export type ClientMessage = Command | PongMessage

// ---------------------------------------------------------------- results

export interface ConnectResult {
  client: string
  session: { id: string; token: string }
  /** true when the session in the command was resumed. */
  resumed: boolean
  version: number
  node: string
  /** Server ping interval in ms; the client watchdog allows this plus its maxServerPingDelay. */
  ping: number
  /** Milliseconds until the token expires; absent when it does not. Refresh before then. */
  expiresIn?: number
  /** The server's per-connection limits, so a client can pace itself (e.g. flushing an offline queue) instead of being refused. */
  limits?: ConnectionLimits
  data?: unknown
}

export interface ConnectionLimits {
  /** Sustained commands per second (token bucket rate). */
  commandsPerSecond: number
  /** Commands allowed in a burst (token bucket size). */
  commandBurst: number
  /** Sustained bytes per second of client frames (token bucket rate); a frame past it is refused whole. */
  bytesPerSecond?: number
  /** Bytes of client frames allowed in a burst (token bucket size). */
  bytesBurst?: number
  /** Largest `data` of a publish or RPC, in encoded bytes. */
  maxPayload: number
  /** Most messages in one client frame. */
  maxBatch: number
}

export interface SubscribeResult {
  epoch: string
  offset: number
  /** true when every publication after `recover` is in `publications`. */
  recovered: boolean
  /** true when the command asked to recover. */
  wasRecovering: boolean
  publications: Publication[]
  /** Subscribed with a channel token: ms until it expires (send `sub_refresh` before then). */
  expiresIn?: number
}

export type UnsubscribeResult = Record<string, never>

export interface PublishResult {
  offset: number
  epoch: string
  /** true when this msgId had already been published: nothing new was stored. */
  duplicate?: boolean
}

export interface RpcResult {
  data?: unknown
}

export interface PresenceResult {
  clients: Record<string, ClientInfo>
}

export interface PresenceStatsResult {
  clients: number
  users: number
}

export interface HistoryResult {
  epoch: string
  offset: number
  publications: Publication[]
}

export type PingResult = Record<string, never>

export interface RefreshResult {
  expiresIn?: number
}

export interface ResultByType {
  connect: ConnectResult
  subscribe: SubscribeResult
  unsubscribe: UnsubscribeResult
  publish: PublishResult
  rpc: RpcResult
  presence: PresenceResult
  presence_stats: PresenceStatsResult
  history: HistoryResult
  ping: PingResult
  refresh: RefreshResult
  sub_refresh: RefreshResult
}

export interface ReplyError {
  code: number
  message: string
  temporary: boolean
}

export interface ResultReply {
  id: number
  result: unknown
}

export interface ErrorReply {
  id: number
  error: ReplyError
}

export type Reply = ResultReply | ErrorReply

// ---------------------------------------------------------------- pushes

export interface PubPush {
  type: 'pub'
  channel: string
  epoch: string
  offset: number
  data: unknown
  info?: ClientInfo
}

export interface JoinPush {
  type: 'join'
  channel: string
  info: ClientInfo
}

export interface LeavePush {
  type: 'leave'
  channel: string
  info: ClientInfo
}

/** A message for this client only (server API `send`, or the application). */
export interface MessagePush {
  type: 'message'
  data: unknown
}

export interface PingPush {
  type: 'ping'
}

/** Sent just before the server closes the connection, so the advice survives proxies that rewrite close codes. */
export interface DisconnectPush {
  type: 'disconnect'
  code: number
  reason: string
}

/** The server subscribed this connection to a channel (server-side subscription). */
export interface SubscribePush {
  type: 'subscribe'
  channel: string
  epoch: string
  offset: number
}

/** The server ended a subscription; `code` is a close code whose advice says whether to resubscribe. */
export interface UnsubscribePush {
  type: 'unsubscribe'
  channel: string
  code: number
  reason: string
}

export type Push =
  | PubPush
  | JoinPush
  | LeavePush
  | MessagePush
  | PingPush
  | DisconnectPush
  | SubscribePush
  | UnsubscribePush

export type PushType = Push['type']

export type ServerMessage = Reply | Push

export function isReply(msg: ServerMessage): msg is Reply {
  return (msg as Reply).id !== undefined
}

export function isErrorReply(msg: Reply): msg is ErrorReply {
  return (msg as ErrorReply).error !== undefined
}
