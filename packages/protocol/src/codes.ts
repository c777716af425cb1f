/**
 * The one table of close codes and error codes, shared by server and client: the numbers, advice
 * and temporariness of `code-core.ts` with a description for each. `docs/protocol.md` documents
 * every entry; `test/codes-doc.test.ts` fails when they disagree.
 */
import { closeCodes, errorCodes, type CloseCodeName, type ErrorCodeName, type ReconnectAdvice } from './code-core.js'

export { adviceFor, closeCodeName, errorCodeName, type CloseCodeName, type ErrorCodeName, type ReconnectAdvice } from './code-core.js'

export interface CloseCodeInfo {
  readonly code: number
  readonly advice: ReconnectAdvice
  readonly description: string
}

export interface ErrorCodeInfo {
  readonly code: number
  /** true: the same command may succeed if retried later (after a backoff). */
  readonly temporary: boolean
  readonly description: string
}

const closeDescriptions: Record<CloseCodeName, string> = {
  normal: 'Closed on purpose by either side.',
  going_away: 'The peer is going away without a drain (process exit, page navigation).',
  protocol_error: 'WebSocket-level protocol violation.',
  abnormal: 'Observed locally only: the connection dropped without a close frame.',
  invalid_payload: 'A text frame was not valid UTF-8 (closed by the WebSocket layer).',
  message_too_big: 'A frame exceeded the server frame limit (max payload plus envelope).',
  internal_error: 'Unexpected server error.',
  restart: 'The node is draining (deploy, reload, shutdown): reconnect now to any node and recover.',
  try_later: 'The node is overloaded, full, or its engine is unavailable.',
  rate_limited: 'The connection kept sending commands faster than its rate limit.',
  slow_consumer: 'The client read too slowly and its send queue overflowed; reconnect and recover.',
  insufficient_state: 'A gap was found in a channel stream; reconnect and recover from the last offset.',
  heartbeat_timeout: 'No pong (server side) or no frame at all (client watchdog) within the heartbeat bound.',
  connect_timeout: 'No connect command (server side) or no connect reply (client side) in time.',
  bad_request: 'A malformed frame or a protocol violation (command before connect, duplicate connect).',
  token_expired: 'The connection token expired and was not refreshed in time.',
  unauthorized: 'The connection token was missing or invalid.',
  forbidden: 'The client is not allowed (origin, banned user).',
  taken_over: 'A newer connection resumed this session; this one must not reconnect.',
  kicked: 'Disconnected by the server API or the application; do not reconnect.',
  unsupported_version: 'The client speaks a protocol version this server does not support.',
}

const errorDescriptions: Record<ErrorCodeName, string> = {
  internal: 'Unexpected server error.',
  unauthorized: 'Not authenticated, or the token is invalid.',
  unknown_channel: 'The channel name is malformed (a namespace that is not configured uses the default channel options).',
  permission_denied: 'Authorization refused the command (user-limited channel, canSubscribe/canPublish hook).',
  method_not_found: 'No RPC handler is registered for the method.',
  already_subscribed: 'The connection is already subscribed to the channel.',
  limit_exceeded: 'A per-connection limit was reached (e.g. max subscriptions).',
  bad_request: 'The command is malformed or has invalid fields.',
  not_available: 'The feature is disabled for this channel namespace (publish, presence, history).',
  token_expired: 'The token presented (connect or refresh) has expired.',
  rate_limited: 'The connection exceeded its command rate; retry after a backoff.',
  payload_too_large: 'The data of a publish or RPC exceeds maxPayload.',
  engine_unavailable: 'The engine (e.g. Redis) is unavailable; the command was not performed.',
  not_subscribed: 'The connection is not subscribed to the channel.',
  in_progress: 'A command with the same message id is still being processed; retry later.',
  unrecoverable_position: 'History since the given position is no longer available (epoch changed or trimmed).',
  timeout: 'Client side: no reply arrived within the command timeout.',
  queue_full: 'Client side: the offline queue is full (by count or bytes); the newest command is rejected.',
  client_closed: 'Client side: the client was closed (or stopped by a close advice) with the command pending.',
  storage_failed: 'Client side: the storage option failed, so the command could not be made durable before sending.',
  dropped: 'Client side: the application dropped a command restored from storage before it was acknowledged.',
  backend_unavailable: 'The application backend behind the proxy is down, slow or answered garbage; the command was not carried out.',
}

type Described<T> = { readonly [K in keyof T]: T[K] & { readonly description: string } }

function describe<T extends Record<string, object>>(table: T, descriptions: Record<keyof T, string>): Described<T> {
  return Object.fromEntries(Object.entries(table).map(([name, info]) => [name, { ...info, description: descriptions[name as keyof T] }])) as Described<T>
}

export const CloseCodes = /* @__PURE__ */ describe(closeCodes, closeDescriptions) satisfies Record<string, CloseCodeInfo>

export const ErrorCodes = /* @__PURE__ */ describe(errorCodes, errorDescriptions) satisfies Record<string, ErrorCodeInfo>
