import type { Holdfast } from '@holdfast/server'
import { isAdminChannel } from './admin-identity.js'
import { MAX_LISTED_CHANNELS, type NodeStats } from './feed.js'

interface Snapshot {
  at: number
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

function snapshot(holdfast: Holdfast, at: number): Snapshot {
  const c = holdfast.counters
  return { at, messagesIn: c.messagesIn, messagesOut: c.messagesOut, bytesIn: c.bytesIn, bytesOut: c.bytesOut }
}

const rate = (delta: number, ms: number): number => (ms > 0 ? Math.round((delta * 1000 * 10) / ms) / 10 : 0)

/**
 * This node's numbers for the dashboard: rates from the gateway's traffic counters over the time
 * since the previous sample, counts from nodeInfo(), the busiest local channels. The dashboard's
 * own channel is left out of the channel list (but its connection and messages are counted).
 */
export function nodeStats(holdfast: Holdfast, prev: Snapshot, now: Snapshot): NodeStats {
  const info = holdfast.nodeInfo()
  const ms = now.at - prev.at
  const channels = holdfast.channels().filter((c) => !isAdminChannel(c.channel))
  channels.sort((a, b) => b.subscribers - a.subscribers || (a.channel < b.channel ? -1 : 1))
  return {
    v: 1,
    node: info.id,
    at: now.at,
    periodMs: ms,
    connections: info.connections,
    subscriptions: info.subscriptions,
    channels: channels.length,
    messagesInPerSec: rate(now.messagesIn - prev.messagesIn, ms),
    messagesOutPerSec: rate(now.messagesOut - prev.messagesOut, ms),
    bytesInPerSec: rate(now.bytesIn - prev.bytesIn, ms),
    bytesOutPerSec: rate(now.bytesOut - prev.bytesOut, ms),
    ready: holdfast.isReady(),
    draining: holdfast.draining,
    startedAt: info.startedAt,
    top: channels.slice(0, MAX_LISTED_CHANNELS).map((c) => [c.channel, c.subscribers]),
  }
}

export interface StatsPublisherOptions {
  holdfast: Holdfast
  channel: string
  /** @default 1000 */
  intervalMs: number
  onError(err: unknown): void
}

/**
 * Publishes nodeStats() to the admin stats channel every interval. Every node (and every worker)
 * runs one, so the page sees each node under its own id. The stats are ordinary publications:
 * they travel through the engine like any other, and the channel's history lets a page that just
 * opened draw the last minutes at once. It pauses while the node drains (its clients, the
 * dashboard included, are being moved elsewhere) and never overlaps itself when the engine is slow.
 */
export class StatsPublisher {
  readonly #o: StatsPublisherOptions
  readonly #timer: NodeJS.Timeout
  #prev: Snapshot
  #busy = false

  constructor(o: StatsPublisherOptions) {
    this.#o = o
    this.#prev = snapshot(o.holdfast, Date.now())
    this.#timer = setInterval(() => void this.tick(), o.intervalMs).unref()
  }

  async tick(): Promise<void> {
    const { holdfast, channel } = this.#o
    if (this.#busy || holdfast.draining) return
    const now = snapshot(holdfast, Date.now())
    const stats = nodeStats(holdfast, this.#prev, now)
    this.#prev = now
    this.#busy = true
    try {
      await holdfast.publish(channel, stats)
    } catch (err) {
      // An engine that is down (Redis away) already reports itself on /readyz and in the logs.
      this.#o.onError(err)
    } finally {
      this.#busy = false
    }
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}
