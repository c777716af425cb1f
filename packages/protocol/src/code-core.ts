/**
 * The code tables without their descriptions: what both sides act on (numbers, reconnect advice,
 * temporariness) and the lookups. `codes.ts` adds the descriptions; a client bundle carries only
 * this. `docs/protocol.md` documents every entry; `test/codes-doc.test.ts` fails when they disagree.
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

export const closeCodes = {
  normal: { code: 1000, advice: 'none' },
  going_away: { code: 1001, advice: 'reconnect' },
  protocol_error: { code: 1002, advice: 'backoff' },
  abnormal: { code: 1006, advice: 'backoff' },
  invalid_payload: { code: 1007, advice: 'backoff' },
  message_too_big: { code: 1009, advice: 'backoff' },
  internal_error: { code: 1011, advice: 'backoff' },
  restart: { code: 4000, advice: 'reconnect' },
  try_later: { code: 4001, advice: 'backoff' },
  rate_limited: { code: 4002, advice: 'backoff' },
  slow_consumer: { code: 4003, advice: 'backoff' },
  insufficient_state: { code: 4004, advice: 'reconnect' },
  heartbeat_timeout: { code: 4005, advice: 'backoff' },
  connect_timeout: { code: 4006, advice: 'backoff' },
  bad_request: { code: 4007, advice: 'backoff' },
  token_expired: { code: 4008, advice: 'refresh' },
  unauthorized: { code: 4009, advice: 'refresh' },
  forbidden: { code: 4010, advice: 'stop' },
  taken_over: { code: 4011, advice: 'stop' },
  kicked: { code: 4012, advice: 'stop' },
  unsupported_version: { code: 4013, advice: 'stop' },
} as const satisfies Record<string, { code: number; advice: ReconnectAdvice }>

export type CloseCodeName = keyof typeof closeCodes

export const errorCodes = {
  internal: { code: 100, temporary: true },
  unauthorized: { code: 101, temporary: false },
  unknown_channel: { code: 102, temporary: false },
  permission_denied: { code: 103, temporary: false },
  method_not_found: { code: 104, temporary: false },
  already_subscribed: { code: 105, temporary: false },
  limit_exceeded: { code: 106, temporary: false },
  bad_request: { code: 107, temporary: false },
  not_available: { code: 108, temporary: false },
  token_expired: { code: 109, temporary: false },
  rate_limited: { code: 110, temporary: true },
  payload_too_large: { code: 111, temporary: false },
  engine_unavailable: { code: 112, temporary: true },
  not_subscribed: { code: 113, temporary: false },
  in_progress: { code: 114, temporary: true },
  unrecoverable_position: { code: 115, temporary: false },
  timeout: { code: 116, temporary: true },
  queue_full: { code: 117, temporary: false },
  client_closed: { code: 118, temporary: false },
  storage_failed: { code: 119, temporary: false },
  dropped: { code: 120, temporary: false },
  backend_unavailable: { code: 121, temporary: true },
} as const satisfies Record<string, { code: number; temporary: boolean }>

export type ErrorCodeName = keyof typeof errorCodes

const closeByNumber = new Map<number, CloseCodeName>(
  Object.entries(closeCodes).map(([name, info]) => [info.code, name as CloseCodeName]),
)
const errorByNumber = new Map<number, ErrorCodeName>(
  Object.entries(errorCodes).map(([name, info]) => [info.code, name as ErrorCodeName]),
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
  return name === undefined ? 'backoff' : closeCodes[name].advice
}
