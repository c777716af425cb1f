import { CloseCodes, ErrorCodes, type CloseCodeName } from '@holdfast/protocol'

/**
 * JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of every request and response of the server
 * API. Fastify validates requests and serializes responses with these very objects, and the
 * OpenAPI document is built from them too, so the documentation cannot drift from validation.
 *
 * Two rules for the request schemas, both about Fastify's default ajv options:
 * - Unknown fields are rejected with `additionalProperties: { not: {} }`, not `false`: with
 *   `false`, Fastify's ajv (`removeAdditional: true`) silently drops them, and a misspelt
 *   `idempotencykey` would publish twice instead of failing.
 * - Channel names are only typed as strings here: the gateway owns the channel rules and answers
 *   `unknown_channel` with the reason, the same as it does over WebSocket.
 */
export type JsonSchema = Readonly<Record<string, unknown>>

const closed = { not: {} } as const

/** Close codes the API may send. `abnormal` (1006) is reserved: it must never appear in a close frame. */
export const DISCONNECT_CODES = (Object.keys(CloseCodes) as CloseCodeName[]).filter((name) => name !== 'abnormal')

const channel = { type: 'string', description: 'Channel name, e.g. `chat:lobby` (namespace `chat`).', examples: ['chat:lobby'] } as const
const user = { type: 'string', minLength: 1, maxLength: 255, description: 'User id, as the connection token\'s `sub` (never empty: that would match every anonymous connection).', examples: ['alice'] } as const
const client = { type: 'string', minLength: 1, maxLength: 64, description: 'Connection id, as the `client` field of the connect result.' } as const
const data = { description: 'Any JSON value. It must encode in both codecs (JSON and MessagePack) and nest at most 64 levels.', examples: [{ text: 'hello' }] } as const
const idempotencyKey = {
  type: 'string',
  minLength: 1,
  maxLength: 256,
  description: 'Publish at most once per key and channel within the idempotency window (5 minutes by default): a repeat returns the first result with `duplicate: true`.',
  examples: ['order-7f3c-shipped'],
} as const
const offset = { type: 'integer', minimum: 0, description: 'Offset in the channel stream (monotonic per epoch).' } as const
const epoch = { type: 'string', description: 'Changes whenever the continuity of the stream is lost; offsets compare only within one epoch.' } as const

const clientInfo = {
  type: 'object',
  required: ['client', 'user'],
  properties: { client: { type: 'string' }, user: { type: 'string' }, info: { description: 'Connection info from the token or the authenticate hook.' } },
} as const

export const errorResponse = {
  type: 'object',
  description: 'Every error: `code` is stable (see docs/errors.md), `message` is for humans.',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: Object.keys(ErrorCodes) },
        message: { type: 'string' },
      },
    },
  },
} as const

/** The Idempotency-Key header (Fastify validates header names lowercased). */
export const idempotencyHeaders = {
  type: 'object',
  properties: { 'idempotency-key': { ...idempotencyKey, description: 'Same as the `idempotencyKey` body field (if both are given they must be equal).' } },
} as const

// ---------------------------------------------------------------- requests

export const publishBody = {
  type: 'object',
  required: ['channel', 'data'],
  additionalProperties: closed,
  properties: { channel, data, idempotencyKey },
} as const

export const broadcastBody = {
  type: 'object',
  required: ['channels', 'data'],
  additionalProperties: closed,
  properties: {
    channels: { type: 'array', minItems: 1, maxItems: 1000, uniqueItems: true, items: channel, description: 'Channels to publish to (1–1000, no repeats).' },
    data,
    idempotencyKey: { ...idempotencyKey, description: 'Applied per channel: a retry publishes only to the channels that did not get it yet.' },
  },
} as const

export const disconnectBody = {
  type: 'object',
  additionalProperties: closed,
  anyOf: [{ required: ['user'] }, { required: ['client'] }],
  properties: {
    user: { ...user, description: 'Disconnect every connection of this user, on every node.' },
    client: { ...client, description: 'Disconnect this one connection, wherever it is.' },
    code: { type: 'string', enum: DISCONNECT_CODES, default: 'kicked', description: 'Close code name; its advice tells the client whether to reconnect (`kicked`: do not; `restart`: reconnect now).' },
    reason: { type: 'string', maxLength: 120, description: 'Sent in the disconnect push and the close frame.' },
  },
} as const

export const userChannelBody = {
  type: 'object',
  required: ['user', 'channel'],
  additionalProperties: closed,
  properties: { user, channel },
} as const

export const channelBody = {
  type: 'object',
  required: ['channel'],
  additionalProperties: closed,
  properties: { channel },
} as const

export const historyBody = {
  type: 'object',
  required: ['channel'],
  additionalProperties: closed,
  properties: {
    channel,
    since: {
      type: 'object',
      required: ['offset', 'epoch'],
      additionalProperties: closed,
      properties: { offset, epoch },
      description: 'Publications strictly after this position; 409 `unrecoverable_position` when some of them are gone.',
    },
    limit: { type: 'integer', minimum: 0, description: 'At most this many (capped by the channel\'s history size); 0 returns only the stream position.' },
    reverse: { type: 'boolean', description: 'Newest first.' },
  },
} as const

export const emptyBody = {
  type: 'object',
  additionalProperties: closed,
  properties: {},
  description: 'No fields; the body may be omitted.',
} as const

export const sendBody = {
  type: 'object',
  required: ['data'],
  additionalProperties: closed,
  anyOf: [{ required: ['user'] }, { required: ['client'] }],
  properties: {
    user: { ...user, description: 'Send to every connection of this user, on every node.' },
    client: { ...client, description: 'Send to this one connection.' },
    data,
  },
} as const

// ---------------------------------------------------------------- responses

const position = { offset, epoch } as const

export const publishResult = {
  type: 'object',
  required: ['offset', 'epoch', 'duplicate'],
  properties: { ...position, duplicate: { type: 'boolean', description: 'true when the idempotency key was seen before: nothing new was published.' } },
} as const

export const broadcastResult = {
  type: 'object',
  required: ['results'],
  properties: {
    results: {
      type: 'array',
      description: 'One entry per requested channel, in request order: either `offset`, `epoch` and `duplicate`, or `error`.',
      items: {
        type: 'object',
        required: ['channel'],
        properties: {
          channel: { type: 'string' },
          ...publishResult.properties,
          error: errorResponse.properties.error,
        },
      },
    },
  },
} as const

export const emptyResult = { type: 'object', properties: {}, description: 'Accepted: the command was handed to every node.' } as const

export const presenceResult = {
  type: 'object',
  required: ['presence'],
  properties: { presence: { type: 'object', additionalProperties: clientInfo, description: 'Connection id → who is behind it.' } },
} as const

export const presenceStatsResult = {
  type: 'object',
  required: ['clients', 'users'],
  properties: { clients: { type: 'integer', minimum: 0 }, users: { type: 'integer', minimum: 0 } },
} as const

export const historyResult = {
  type: 'object',
  required: ['offset', 'epoch', 'publications'],
  properties: {
    offset: { ...offset, description: 'The stream top: offset of the latest publication (0 when none).' },
    epoch,
    publications: {
      type: 'array',
      items: { type: 'object', required: ['offset', 'data'], properties: { offset, data, info: clientInfo } },
    },
  },
} as const

export const channelsResult = {
  type: 'object',
  required: ['node', 'channels'],
  properties: {
    node: { type: 'string', description: 'The node that answered: the list covers its subscribers only.' },
    channels: {
      type: 'array',
      items: { type: 'object', required: ['channel', 'subscribers'], properties: { channel: { type: 'string' }, subscribers: { type: 'integer', minimum: 0 } } },
    },
  },
} as const

const nodeInfo = {
  type: 'object',
  required: ['id', 'connections', 'subscriptions', 'channels', 'startedAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    connections: { type: 'integer', minimum: 0 },
    subscriptions: { type: 'integer', minimum: 0 },
    channels: { type: 'integer', minimum: 0 },
    startedAt: { type: 'integer', description: 'ms since the Unix epoch.' },
    updatedAt: { type: 'integer', description: 'ms since the Unix epoch of the registry entry (live for the answering node).' },
  },
} as const

export const infoResult = {
  type: 'object',
  required: ['node', 'nodes', 'registry', 'totals'],
  properties: {
    node: {
      type: 'object',
      description: 'The node that answered, with live counts.',
      required: [...nodeInfo.required, 'ready', 'draining'],
      properties: { ...nodeInfo.properties, ready: { type: 'boolean' }, draining: { type: 'boolean' } },
    },
    nodes: { type: 'array', items: nodeInfo, description: 'Live nodes of the fleet from the engine\'s registry (the answering node always included).' },
    registry: { type: 'string', enum: ['ok', 'unavailable'], description: '`unavailable`: the engine could not be asked; `nodes` holds the answering node only.' },
    totals: {
      type: 'object',
      required: ['nodes', 'connections', 'subscriptions'],
      properties: { nodes: { type: 'integer' }, connections: { type: 'integer' }, subscriptions: { type: 'integer' } },
    },
  },
} as const
