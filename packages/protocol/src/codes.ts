/**
 * The one table of close codes and error codes, shared by server and client.
 * `docs/protocol.md` documents every entry; `test/codes-doc.test.ts` fails when they disagree.
 */

/**
 * What a client should do after a connection closes with a given code.
 * - `none`: closed on purpose; do not reconnect.
 * - `reconnect`: reconnect now (jittered within a second), to any endpoint, then recover.
 * - `backoff`: reconnect with capped exponential backoff and full jitter, then recover.
 * - `refresh`: get a new token (`getToken()`), then reconnect; stop if that fails twice.
 * - `stop`: do not reconnect; the application must decide (e.g. session taken over elsewhere).
 */
export type ReconnectAdvice = 'none' | 'reconnect' | 'backoff' | 'refresh' | 'stop'

export interface CloseCodeInfo {
  readonly code: number
  readonly advice: ReconnectAdvice
  readonly description: string
}

export const CloseCodes = {
  normal: { code: 1000, advice: 'none', description: 'Closed on purpose by either side.' },
  going_away: { code: 1001, advice: 'reconnect', description: 'The peer is going away without a drain (process exit, page navigation).' },
  protocol_error: { code: 1002, advice: 'backoff', description: 'WebSocket-level protocol violation.' },
  abnormal: { code: 1006, advice: 'backoff', description: 'Observed locally only: the connection dropped without a close frame.' },
  message_too_big: { code: 1009, advice: 'backoff', description: 'A frame exceeded the server frame limit (max payload plus envelope).' },
  internal_error: { code: 1011, advice: 'backoff', description: 'Unexpected server error.' },
  restart: { code: 4000, advice: 'reconnect', description: 'The node is draining (deploy, reload, shutdown): reconnect now to any node and recover.' },
  try_later: { code: 4001, advice: 'backoff', description: 'The node is overloaded, full, or its engine is unavailable.' },
  rate_limited: { code: 4002, advice: 'backoff', description: 'The connection kept sending commands faster than its rate limit.' },
  slow_consumer: { code: 4003, advice: 'backoff', description: 'The client read too slowly and its send queue overflowed; reconnect and recover.' },
  insufficient_state: { code: 4004, advice: 'reconnect', description: 'A gap was found in a channel stream; reconnect and recover from the last offset.' },
  heartbeat_timeout: { code: 4005, advice: 'backoff', description: 'No pong (server side) or no frame at all (client watchdog) within the heartbeat bound.' },
  connect_timeout: { code: 4006, advice: 'backoff', description: 'No connect command (server side) or no connect reply (client side) in time.' },
  bad_request: { code: 4007, advice: 'backoff', description: 'A malformed frame or a protocol violation (command before connect, duplicate connect).' },
  token_expired: { code: 4008, advice: 'refresh', description: 'The connection token expired and was not refreshed in time.' },
  unauthorized: { code: 4009, advice: 'refresh', description: 'The connection token was missing or invalid.' },
  forbidden: { code: 4010, advice: 'stop', description: 'The client is not allowed (origin, banned user).' },
  taken_over: { code: 4011, advice: 'stop', description: 'A newer connection resumed this session; this one must not reconnect.' },
  kicked: { code: 4012, advice: 'stop', description: 'Disconnected by the server API or the application; do not reconnect.' },
  unsupported_version: { code: 4013, advice: 'stop', description: 'The client speaks a protocol version this server does not support.' },
} as const satisfies Record<string, CloseCodeInfo>

export type CloseCodeName = keyof typeof CloseCodes

export interface ErrorCodeInfo {
  readonly code: number
  /** true: the same command may succeed if retried later (after a backoff). */
  readonly temporary: boolean
  readonly description: string
}

export const ErrorCodes = {
  internal: { code: 100, temporary: true, description: 'Unexpected server error.' },
  unauthorized: { code: 101, temporary: false, description: 'Not authenticated, or the token is invalid.' },
  unknown_channel: { code: 102, temporary: false, description: 'The channel name is malformed (a namespace that is not configured uses the default channel options).' },
  permission_denied: { code: 103, temporary: false, description: 'Authorization refused the command (user-limited channel, canSubscribe/canPublish hook).' },
  method_not_found: { code: 104, temporary: false, description: 'No RPC handler is registered for the method.' },
  already_subscribed: { code: 105, temporary: false, description: 'The connection is already subscribed to the channel.' },
  limit_exceeded: { code: 106, temporary: false, description: 'A per-connection limit was reached (e.g. max subscriptions).' },
  bad_request: { code: 107, temporary: false, description: 'The command is malformed or has invalid fields.' },
  not_available: { code: 108, temporary: false, description: 'The feature is disabled for this channel namespace (publish, presence, history).' },
  token_expired: { code: 109, temporary: false, description: 'The token presented (connect or refresh) has expired.' },
  rate_limited: { code: 110, temporary: true, description: 'The connection exceeded its command rate; retry after a backoff.' },
  payload_too_large: { code: 111, temporary: false, description: 'The data of a publish or RPC exceeds maxPayload.' },
  engine_unavailable: { code: 112, temporary: true, description: 'The engine (e.g. Redis) is unavailable; the command was not performed.' },
  not_subscribed: { code: 113, temporary: false, description: 'The connection is not subscribed to the channel.' },
  in_progress: { code: 114, temporary: true, description: 'A command with the same message id is still being processed; retry later.' },
  unrecoverable_position: { code: 115, temporary: false, description: 'History since the given position is no longer available (epoch changed or trimmed).' },
  timeout: { code: 116, temporary: true, description: 'Client side: no reply arrived within the command timeout.' },
  queue_full: { code: 117, temporary: false, description: 'Client side: the offline queue is full (by count or bytes); the newest command is rejected.' },
  client_closed: { code: 118, temporary: false, description: 'Client side: the client was closed (or stopped by a close advice) with the command pending.' },
  storage_failed: { code: 119, temporary: false, description: 'Client side: the storage option failed, so the command could not be made durable before sending.' },
  dropped: { code: 120, temporary: false, description: 'Client side: the application dropped a command restored from storage before it was acknowledged.' },
} as const satisfies Record<string, ErrorCodeInfo>

export type ErrorCodeName = keyof typeof ErrorCodes

const closeByNumber = new Map<number, CloseCodeName>(
  Object.entries(CloseCodes).map(([name, info]) => [info.code, name as CloseCodeName]),
)
const errorByNumber = new Map<number, ErrorCodeName>(
  Object.entries(ErrorCodes).map(([name, info]) => [info.code, name as ErrorCodeName]),
)

/** Name of a close code, or undefined for a code outside the table. */
export function closeCodeName(code: number): CloseCodeName | undefined {
  return closeByNumber.get(code)
}

/** Name of an error code, or undefined for a code outside the table. */
export function errorCodeName(code: number): ErrorCodeName | undefined {
  return errorByNumber.get(code)
}

/**
 * Reconnect advice for any close code, including ones outside the table:
 * other 1xxx codes back off, 3xxx/4xxx codes that we do not know back off too
 * (a newer server may send codes this client does not know; reconnecting carefully is safest).
 */
export function adviceFor(code: number): ReconnectAdvice {
  const name = closeByNumber.get(code)
  return name === undefined ? 'backoff' : CloseCodes[name].advice
}
