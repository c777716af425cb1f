import type { NodeStats, NodesResponse } from '../src/admin/feed.js'

/** What the charts show at most... */
export const WINDOW_MS = 120_000
/** ...and at least: a node that just started fills a short window instead of a sliver of a long one. */
export const MIN_WINDOW_MS = 30_000
/** A node that published nothing for this long is shown as silent (it publishes every second). */
export const SILENT_AFTER_MS = 5000
/** ...and dropped from the page after this long, unless the node registry still lists it. */
const FORGET_AFTER_MS = 60_000

export type NodeState = 'up' | 'silent' | 'draining' | 'not ready' | 'registered'

export interface NodeRow {
  id: string
  connections: number
  subscriptions: number
  channels: number
  inPerSec: number | undefined
  outPerSec: number | undefined
  startedAt: number
  state: NodeState
}

export interface ChannelRow {
  channel: string
  subscribers: number
  nodes: number
}

interface NodeTrack {
  samples: NodeStats[]
  last: NodeStats
  /** Page clock when the last sample arrived: node clocks may differ from ours. */
  seenAt: number
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)

/**
 * Stats from the feed, checked field by field: only the nodes can publish on the channel, but a
 * node of another version could send another shape, and one bad message must not break the page.
 */
export function parseStats(data: unknown): NodeStats | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const d = data as Record<string, unknown>
  if (d['v'] !== 1 || typeof d['node'] !== 'string') return undefined
  const nums = ['at', 'periodMs', 'connections', 'subscriptions', 'channels', 'messagesInPerSec', 'messagesOutPerSec', 'bytesInPerSec', 'bytesOutPerSec', 'startedAt']
  if (!nums.every((k) => isNum(d[k]))) return undefined
  if (typeof d['ready'] !== 'boolean' || typeof d['draining'] !== 'boolean' || !Array.isArray(d['top'])) return undefined
  const top = (d['top'] as unknown[]).filter((e): e is [string, number] => Array.isArray(e) && typeof e[0] === 'string' && isNum(e[1]))
  return { ...(d as unknown as NodeStats), top }
}

/** The fleet as the page knows it: recent samples per node from the feed, plus the node registry. */
export class Fleet {
  readonly #nodes = new Map<string, NodeTrack>()
  #registry: NodesResponse['nodes'] = []

  /** Add a sample (live, or from history when the page opens); older duplicates are ignored. */
  add(s: NodeStats, now: number): void {
    const track = this.#nodes.get(s.node)
    if (track === undefined) {
      this.#nodes.set(s.node, { samples: [s], last: s, seenAt: now })
      return
    }
    if (s.at <= track.last.at) {
      // History replayed after live samples: keep the order by time, once each.
      if (!track.samples.some((x) => x.at === s.at)) {
        track.samples.push(s)
        track.samples.sort((a, b) => a.at - b.at)
      }
      return
    }
    track.samples.push(s)
    track.last = s
    track.seenAt = now
  }

  setRegistry(nodes: NodesResponse['nodes']): void {
    this.#registry = nodes
  }

  /** Drop samples outside the window and nodes long gone. */
  prune(now: number): void {
    for (const [id, t] of this.#nodes) {
      if (now - t.seenAt > FORGET_AFTER_MS && !this.#registry.some((n) => n.id === id)) {
        this.#nodes.delete(id)
        continue
      }
      const from = t.last.at - WINDOW_MS
      while (t.samples.length > 0 && (t.samples[0] as NodeStats).at < from) t.samples.shift()
    }
  }

  /** Node ids in a stable order (for colours): by id. */
  ids(): string[] {
    const ids = new Set([...this.#nodes.keys(), ...this.#registry.map((n) => n.id)])
    return [...ids].sort()
  }

  /** The charts' time span ending at `end`: the data's, between MIN_WINDOW_MS and WINDOW_MS. */
  window(end: number): number {
    let first = end
    for (const t of this.#nodes.values()) first = Math.min(first, t.samples[0]?.at ?? end)
    return Math.min(WINDOW_MS, Math.max(MIN_WINDOW_MS, Math.ceil((end - first) / 30_000) * 30_000))
  }

  samples(id: string): readonly NodeStats[] {
    return this.#nodes.get(id)?.samples ?? []
  }

  /** One row per node: live numbers when the node publishes, registry numbers otherwise. */
  rows(now: number): NodeRow[] {
    return this.ids().map((id) => {
      const t = this.#nodes.get(id)
      if (t === undefined) {
        const r = this.#registry.find((n) => n.id === id) as NodesResponse['nodes'][number]
        return { id, connections: r.connections, subscriptions: r.subscriptions, channels: r.channels, inPerSec: undefined, outPerSec: undefined, startedAt: r.startedAt, state: 'registered' }
      }
      const s = t.last
      const state: NodeState = now - t.seenAt > SILENT_AFTER_MS ? 'silent' : s.draining ? 'draining' : s.ready ? 'up' : 'not ready'
      return { id, connections: s.connections, subscriptions: s.subscriptions, channels: s.channels, inPerSec: s.messagesInPerSec, outPerSec: s.messagesOutPerSec, startedAt: s.startedAt, state }
    })
  }

  /** Sums over the nodes that are publishing (a silent node's last numbers are stale). */
  totals(now: number): { nodes: number; connections: number; inPerSec: number; outPerSec: number } {
    let connections = 0
    let inPerSec = 0
    let outPerSec = 0
    let nodes = 0
    for (const t of this.#nodes.values()) {
      if (now - t.seenAt > SILENT_AFTER_MS) continue
      nodes++
      connections += t.last.connections
      inPerSec += t.last.messagesInPerSec
      outPerSec += t.last.messagesOutPerSec
    }
    return { nodes, connections, inPerSec: Math.round(inPerSec * 10) / 10, outPerSec: Math.round(outPerSec * 10) / 10 }
  }

  /** Channels across the publishing nodes: subscribers summed, busiest first. */
  channels(now: number): ChannelRow[] {
    const byName = new Map<string, ChannelRow>()
    for (const t of this.#nodes.values()) {
      if (now - t.seenAt > SILENT_AFTER_MS) continue
      for (const [channel, subscribers] of t.last.top) {
        const row = byName.get(channel)
        if (row === undefined) byName.set(channel, { channel, subscribers, nodes: 1 })
        else {
          row.subscribers += subscribers
          row.nodes++
        }
      }
    }
    return [...byName.values()].sort((a, b) => b.subscribers - a.subscribers || (a.channel < b.channel ? -1 : 1))
  }
}
