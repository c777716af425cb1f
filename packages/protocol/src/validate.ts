import { HoldfastError } from './errors.js'
import type { ClientMessage, ServerMessage } from './messages.js'

// Hand-written shape checks: the protocol package stays dependency-light and browser-safe, and
// these run on every inbound frame, where a schema library's generality would cost more than it gives.

export type Kind =
  | 'string'
  | 'id'
  | 'uint'
  | 'bool'
  | 'any'
  | 'position'
  | 'session'
  | 'object'
  | 'clientInfo'
  | 'publications'
  | 'replyError'

export interface Shape {
  readonly required: Readonly<Record<string, Kind>>
  readonly optional?: Readonly<Record<string, Kind>>
}

const pushShapes: Readonly<Record<string, Shape>> = {
  pub: { required: { channel: 'string', epoch: 'string', offset: 'uint', data: 'any' }, optional: { info: 'clientInfo' } },
  join: { required: { channel: 'string', info: 'clientInfo' } },
  leave: { required: { channel: 'string', info: 'clientInfo' } },
  message: { required: { data: 'any' } },
  ping: { required: {} },
  disconnect: { required: { code: 'uint', reason: 'string' } },
  subscribe: { required: { channel: 'string', epoch: 'string', offset: 'uint' } },
  unsubscribe: { required: { channel: 'string', code: 'uint', reason: 'string' } },
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

export function check(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof v === 'string'
    case 'id':
      return isUint(v) && v > 0
    case 'uint':
      return isUint(v)
    case 'bool':
      return typeof v === 'boolean'
    case 'any':
      return v !== undefined
    case 'object':
      return isObject(v)
    case 'position':
      return isObject(v) && isUint(v['offset']) && typeof v['epoch'] === 'string'
    case 'session':
      return isObject(v) && typeof v['id'] === 'string' && typeof v['token'] === 'string'
    case 'clientInfo':
      return isObject(v) && typeof v['client'] === 'string' && typeof v['user'] === 'string'
    case 'publications':
      return Array.isArray(v) && v.every((p) => isObject(p) && isUint(p['offset']) && p['data'] !== undefined)
    case 'replyError':
      return isObject(v) && isUint(v['code']) && typeof v['message'] === 'string' && typeof v['temporary'] === 'boolean'
  }
}

// Never String() a decoded value: `{"type":{"toString":1}}` makes that throw a TypeError instead of bad_request.
export function describeType(type: unknown): string {
  return typeof type === 'string' ? JSON.stringify(type).slice(0, 64) : `of kind ${type === null ? 'null' : typeof type}`
}

export function checkShape(shape: Shape, msg: Record<string, unknown>, what: string): void {
  for (const [field, kind] of Object.entries(shape.required)) {
    if (!check(kind, msg[field])) throw new HoldfastError('bad_request', `${what}: field "${field}" is missing or not a valid ${kind}`)
  }
  if (shape.optional !== undefined) {
    for (const [field, kind] of Object.entries(shape.optional)) {
      const v = msg[field]
      if (v !== undefined && !check(kind, v)) throw new HoldfastError('bad_request', `${what}: field "${field}" is not a valid ${kind}`)
    }
  }
}

/** Checks that a decoded value is a well-formed server message (reply or push). */
export function validateServerMessage(value: unknown): ServerMessage {
  if (!isObject(value)) throw new HoldfastError('bad_request', 'message is not an object')
  if (value['id'] !== undefined) {
    if (!check('id', value['id'])) throw new HoldfastError('bad_request', 'reply: invalid id')
    if (value['error'] !== undefined) {
      if (!check('replyError', value['error'])) throw new HoldfastError('bad_request', 'reply: invalid error')
    } else if (!isObject(value['result'])) {
      throw new HoldfastError('bad_request', 'reply: needs a result object or an error')
    }
    return value as unknown as ServerMessage
  }
  const type = value['type']
  if (typeof type !== 'string' || !Object.hasOwn(pushShapes, type)) {
    throw new HoldfastError('bad_request', `unknown push type ${describeType(type)}`)
  }
  checkShape(pushShapes[type] as Shape, value, type)
  return value as unknown as ServerMessage
}
