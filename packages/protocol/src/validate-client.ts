import { HoldfastError } from './errors.js'
import type { ClientMessage } from './messages.js'
import { check, checkShape, describeType, isObject, type Kind, type Shape } from './validate.js'

// Client frames are validated by servers only; in a module of its own so that a browser client,
// which never decodes them, does not carry these shapes.

const withId = (required: Record<string, Kind>, optional?: Record<string, Kind>): Shape =>
  optional === undefined ? { required: { id: 'id', ...required } } : { required: { id: 'id', ...required }, optional }

const clientShapes: Readonly<Record<ClientMessage['type'], Shape>> = {
  connect: withId({ version: 'uint' }, { token: 'string', session: 'session', name: 'string', data: 'any' }),
  subscribe: withId({ channel: 'string' }, { recover: 'position', data: 'any', token: 'string' }),
  unsubscribe: withId({ channel: 'string' }),
  publish: withId({ channel: 'string', data: 'any', msgId: 'string' }),
  rpc: withId({ method: 'string', msgId: 'string' }, { data: 'any' }),
  presence: withId({ channel: 'string' }),
  presence_stats: withId({ channel: 'string' }),
  history: withId({ channel: 'string' }, { since: 'position', limit: 'uint', reverse: 'bool' }),
  ping: withId({}),
  refresh: withId({ token: 'string' }),
  sub_refresh: withId({ channel: 'string', token: 'string' }),
  pong: { required: {} },
}

/**
 * A client command that is malformed (a field missing or of the wrong kind, an unknown `type`) but
 * whose `id` could be read: a server answers it with an error reply carrying `error`, instead of
 * closing the connection. Decoding yields it in the command's place in the frame.
 */
export interface InvalidCommand {
  readonly type: 'invalid'
  readonly id: number
  readonly error: HoldfastError
}

/** What a server decodes from a client frame: well-formed messages, and malformed commands it can still answer. */
export type DecodedClientMessage = ClientMessage | InvalidCommand

/**
 * Validates a decoded value as a client message; a malformed one whose `id` is a valid command id
 * becomes an `InvalidCommand`, anything else throws `bad_request`. `extra` is a further check of
 * the value (the JSON codec's `__proto__` refusal), treated the same way.
 */
export function validateClientCommand(value: unknown, extra?: () => void): DecodedClientMessage {
  try {
    extra?.()
    return validateClientMessage(value)
  } catch (err) {
    if (err instanceof HoldfastError && isObject(value) && check('id', value['id'])) return { type: 'invalid', id: value['id'] as number, error: err }
    throw err
  }
}

/** Checks that a decoded value is a well-formed client message; throws `bad_request` otherwise. */
export function validateClientMessage(value: unknown): ClientMessage {
  if (!isObject(value)) throw new HoldfastError('bad_request', 'message is not an object')
  const type = value['type']
  if (typeof type !== 'string' || !Object.hasOwn(clientShapes, type)) {
    throw new HoldfastError('bad_request', `unknown message type ${describeType(type)}`)
  }
  checkShape(clientShapes[type as ClientMessage['type']], value, type)
  return value as unknown as ClientMessage
}

