import type { IncomingHttpHeaders } from 'node:http'
import { HoldfastError, type CloseCodeName, type StreamPosition } from '@holdfast/protocol'
import type { FastifyBaseLogger } from 'fastify'
import type { NodeInfo } from '../engine/engine.js'
import type { Holdfast } from '../holdfast.js'
import { measureData } from '../payload.js'
import { toApiError, type ApiErrorBody } from './errors.js'
import * as s from './schemas.js'

/** What a method gets: the body (already validated against its schema) and the request headers. */
export interface ApiCall {
  body: unknown
  headers: IncomingHttpHeaders
  log: FastifyBaseLogger
}

/** One method of the server API: `POST <prefix>/<name>`. */
export interface ApiMethod {
  name: string
  summary: string
  description: string
  body: s.JsonSchema
  headers?: s.JsonSchema
  /** The 200 response. */
  response: s.JsonSchema
  /** Error statuses this method can answer on top of the ones every method can. */
  errors: readonly number[]
  run(holdfast: Holdfast, call: ApiCall): Promise<unknown>
}

/**
 * Ties a method's body type to its handler. The cast in between is the one place where a type
 * is taken on trust: Fastify has validated the body against `def.body` before `run` is called.
 */
function method<B>(def: Omit<ApiMethod, 'run'> & { run(holdfast: Holdfast, body: B, call: ApiCall): Promise<unknown> }): ApiMethod {
  return { ...def, run: (holdfast, call) => def.run(holdfast, call.body as B, call) }
}

interface Target {
  user?: string
  client?: string
}

/** Optional fields copied only when present (`exactOptionalPropertyTypes`). */
function target(body: Target): Target {
  return { ...(body.user === undefined ? {} : { user: body.user }), ...(body.client === undefined ? {} : { client: body.client }) }
}

/** The key from the body or the `Idempotency-Key` header; two different keys are a client bug. */
function idempotencyKeyOf(fromBody: string | undefined, headers: IncomingHttpHeaders): string | undefined {
  const header = headers['idempotency-key']
  const fromHeader = typeof header === 'string' ? header : undefined
  if (fromBody !== undefined && fromHeader !== undefined && fromBody !== fromHeader) {
    throw new HoldfastError('bad_request', 'body.idempotencyKey and the Idempotency-Key header differ')
  }
  return fromBody ?? fromHeader
}

export const METHODS: readonly ApiMethod[] = [
  method<{ channel: string; data: unknown; idempotencyKey?: string }>({
    name: 'publish',
    summary: 'Publish to a channel',
    description:
      'Appends `data` to the channel stream and fans it out to every subscriber on every node. Answers once the publication is stored. ' +
      'With an idempotency key (body field or `Idempotency-Key` header), a retry within the window returns the first result with `duplicate: true` and publishes nothing.',
    body: s.publishBody,
    headers: s.idempotencyHeaders,
    response: s.publishResult,
    errors: [503],
    async run(holdfast, body, call) {
      const key = idempotencyKeyOf(body.idempotencyKey, call.headers)
      return holdfast.publish(body.channel, body.data, key === undefined ? {} : { idempotencyKey: key })
    },
  }),
  method<{ channels: string[]; data: unknown; idempotencyKey?: string }>({
    name: 'broadcast',
    summary: 'Publish the same data to many channels',
    description:
      'Publishes `data` to each channel independently and reports every channel on its own: one failing channel (a bad name, the engine away) does not stop the others. ' +
      'The status is 200 whenever the request itself was valid; check each result. The idempotency key applies per channel, so a retry of a partly failed broadcast publishes only where it had failed.',
    body: s.broadcastBody,
    headers: s.idempotencyHeaders,
    response: s.broadcastResult,
    errors: [],
    async run(holdfast, body, call) {
      const key = idempotencyKeyOf(body.idempotencyKey, call.headers)
      // One check for the whole request, before anything is published: data that cannot be
      // delivered to subscribers of both codecs is the caller's mistake, not a channel's.
      measureData(body.data)
      const results = await Promise.all(
        body.channels.map(async (channel): Promise<{ channel: string } & ({ offset: number; epoch: string; duplicate: boolean } | ApiErrorBody)> => {
          try {
            return { channel, ...(await holdfast.publish(channel, body.data, key === undefined ? {} : { idempotencyKey: key })) }
          } catch (err) {
            const out = toApiError(err)
            if (out.internal) call.log.error({ err, channel }, 'broadcast to a channel failed')
            return { channel, ...out.body }
          }
        }),
      )
      return { results }
    },
  }),
  method<Target & { code?: CloseCodeName; reason?: string }>({
    name: 'disconnect',
    summary: 'Disconnect a user or a connection',
    description:
      'Closes every connection of `user`, or the connection `client`, on every node, with a close code from the table (default `kicked`: the client must not reconnect). ' +
      'The command is handed to every node through the engine; the answer does not wait for the sockets to close.',
    body: s.disconnectBody,
    response: s.emptyResult,
    errors: [503],
    async run(holdfast, body) {
      await holdfast.disconnect({ ...target(body), code: body.code ?? 'kicked', ...(body.reason === undefined ? {} : { reason: body.reason }) })
      return {}
    },
  }),
  method<{ user: string; channel: string }>({
    name: 'subscribe',
    summary: 'Subscribe a user to a channel, server side',
    description:
      'Subscribes every current connection of `user`, on every node, to `channel`; each receives a `subscribe` push with the stream position. ' +
      'Connections made later are not subscribed (give such channels in the token\'s `channels` claim instead).',
    body: s.userChannelBody,
    response: s.emptyResult,
    errors: [503],
    async run(holdfast, body) {
      await holdfast.subscribeUser(body.user, body.channel)
      return {}
    },
  }),
  method<{ user: string; channel: string }>({
    name: 'unsubscribe',
    summary: 'Unsubscribe a user from a channel, server side',
    description: 'Ends the subscription of every connection of `user` to `channel`, on every node; each receives an `unsubscribe` push with code `kicked`.',
    body: s.userChannelBody,
    response: s.emptyResult,
    errors: [503],
    async run(holdfast, body) {
      await holdfast.unsubscribeUser(body.user, body.channel)
      return {}
    },
  }),
  method<{ channel: string }>({
    name: 'presence',
    summary: 'Who is subscribed to a channel',
    description: 'The presence of a channel, fleet-wide: every connection subscribed with presence, by connection id.',
    body: s.channelBody,
    response: s.presenceResult,
    errors: [503],
    async run(holdfast, body) {
      return { presence: await holdfast.presence(body.channel) }
    },
  }),
  method<{ channel: string }>({
    name: 'presence_stats',
    summary: 'How many are subscribed to a channel',
    description: 'Counts of connections and of distinct users in the presence of a channel, fleet-wide.',
    body: s.channelBody,
    response: s.presenceStatsResult,
    errors: [503],
    async run(holdfast, body) {
      return holdfast.presenceStats(body.channel)
    },
  }),
  method<{ channel: string; since?: StreamPosition; limit?: number; reverse?: boolean }>({
    name: 'history',
    summary: 'Read a channel\'s history',
    description:
      'Publications of the channel stream and its current top position. Without `since`: the latest `limit`. With `since`: the first `limit` after it, ' +
      'so pages are read by passing the last offset seen; a position whose successors are gone (trimmed, or another epoch) answers 409 `unrecoverable_position`.',
    body: s.historyBody,
    response: s.historyResult,
    errors: [409, 503],
    async run(holdfast, body) {
      return holdfast.history(body.channel, {
        ...(body.since === undefined ? {} : { since: body.since }),
        ...(body.limit === undefined ? {} : { limit: body.limit }),
        ...(body.reverse === undefined ? {} : { reverse: body.reverse }),
      })
    },
  }),
  method<Record<string, never>>({
    name: 'channels',
    summary: 'Channels with subscribers on this node',
    description:
      'Channels that have subscribers on the node that answers, with their local subscriber counts. Not fleet-wide: ask each node (`info` lists them), ' +
      'because a fleet-wide list would need a channel index in the engine, which holdfast does not keep.',
    body: s.emptyBody,
    response: s.channelsResult,
    errors: [],
    async run(holdfast) {
      return { node: holdfast.nodeId, channels: holdfast.channels() }
    },
  }),
  method<Record<string, never>>({
    name: 'info',
    summary: 'Nodes of the fleet and their counts',
    description:
      'The answering node with live counts, readiness and drain state, and every node of the engine\'s registry (each refreshes its entry every 5 s). ' +
      'When the engine cannot be asked, `registry` says `unavailable` and only the answering node is listed. Also served as `GET`.',
    body: s.emptyBody,
    response: s.infoResult,
    errors: [],
    run: (holdfast) => info(holdfast),
  }),
  method<Target & { data: unknown }>({
    name: 'send',
    summary: 'Send a message to a user or a connection',
    description:
      'Delivers `data` as a `message` push (the SDK\'s `message` event) to every connection of `user`, or to the connection `client`, on every node. ' +
      'Not stored: a connection that is offline at that moment never gets it.',
    body: s.sendBody,
    response: s.emptyResult,
    errors: [503],
    async run(holdfast, body) {
      await holdfast.send(target(body), body.data)
      return {}
    },
  }),
]

export async function info(holdfast: Holdfast): Promise<unknown> {
  const self = holdfast.nodeInfo()
  let registry: 'ok' | 'unavailable' = 'ok'
  let others: NodeInfo[] = []
  try {
    others = (await holdfast.nodes()).filter((n) => n.id !== self.id)
  } catch {
    // An operator asks for info precisely when something is wrong: answer with what this node knows.
    registry = 'unavailable'
  }
  // The registry's entry for this node can be seconds old; the live counts replace it.
  const nodes = [self, ...others.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))]
  const totals = { nodes: nodes.length, connections: 0, subscriptions: 0 }
  for (const n of nodes) {
    totals.connections += n.connections
    totals.subscriptions += n.subscriptions
  }
  return { node: { ...self, ready: holdfast.isReady(), draining: holdfast.draining }, nodes, registry, totals }
}
