/**
 * A channel's stream as the node's parts use it: publishing to the engine (the namespace's stream
 * options and durability, publish-to-delivery timing, failures counted) and reading history pages.
 * The client `publish` command and the server API both publish through here.
 */
import { HoldfastError, type Publication, type StreamPosition } from '@holdfast/protocol'
import type { PublishOptions, PublishOutcome, StreamOptions } from './engine/engine.js'
import type { NodeContext } from './node-context.js'
import type { ResolvedChannelOptions } from './options.js'

/** The stream options every publish to a channel carries: its history bounds and stream lifetime. */
export function streamOptions(ch: ResolvedChannelOptions, size: number): StreamOptions & { size: number } {
  return { historySize: ch.historySize, historyTtlMs: ch.historyTtlMs, streamTtlMs: ch.streamTtlMs, size }
}

/** Engine publish, timed to its fan-out on this node (publish-to-delivery latency), failures counted. */
export async function publishToEngine(
  ctx: Pick<NodeContext, 'engine' | 'metrics' | 'counters' | 'hub' | 'channelOptions'>,
  channel: string,
  data: unknown,
  opts: PublishOptions,
): Promise<PublishOutcome> {
  const pending = ctx.metrics.delivery.start(channel)
  let out: PublishOutcome
  // The namespace's durability applies to every publish path (client, server API).
  const durability = ctx.channelOptions(channel).durability
  if (durability !== 'none' && opts.durability === undefined) opts = { ...opts, durability }
  try {
    out = await ctx.engine.publish(channel, data, opts)
  } catch (err) {
    ctx.metrics.delivery.failed(pending)
    ctx.counters.inc('engine_errors', 'publish')
    throw err
  }
  ctx.metrics.delivery.stored(pending, out, ctx.hub.subscriberCount(channel) > 0)
  return out
}

export interface HistoryRequest {
  since?: StreamPosition
  limit?: number
  reverse?: boolean
  maxBytes?: number
}

/** A page of a channel's history; `unrecoverable_position` when `since` is no longer in it. The name is checked by the caller. */
export async function readHistory(
  ctx: Pick<NodeContext, 'engine' | 'channelOptions'>,
  channel: string,
  opts: HistoryRequest,
): Promise<{ offset: number; epoch: string; publications: Publication[] }> {
  const ch = ctx.channelOptions(channel)
  const page = await ctx.engine.history(channel, {
    stream: ch,
    limit: Math.min(opts.limit ?? ch.historySize, ch.historySize),
    ...(opts.maxBytes === undefined ? {} : { maxBytes: opts.maxBytes }),
    ...(opts.since === undefined ? {} : { since: opts.since }),
    ...(opts.reverse === undefined ? {} : { reverse: opts.reverse }),
  })
  if (opts.since !== undefined && !page.continuous) throw new HoldfastError('unrecoverable_position', 'history since that position is not available')
  return { offset: page.offset, epoch: page.epoch, publications: page.publications }
}
