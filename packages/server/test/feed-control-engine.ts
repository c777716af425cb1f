/**
 * A MemoryEngine whose live feed, history reads and subscribes a test can disturb the way a remote
 * backend disturbs them: a publication lost on the way to this node (a pub/sub message dropped while
 * it is still stored), an outage of the feed reported through `onStateChange`, a history read that
 * is slow (held until the test releases it), a subscribe or history call that fails. Everything
 * else is the real MemoryEngine: streams, offsets and epochs are what a node would see.
 */
import { HoldfastError, type ClientInfo } from '@holdfast/protocol'
import type { EngineHandler, HistoryPage, HistoryQuery, StreamPublication } from '../src/engine/engine.js'
import { MemoryEngine } from '../src/engine/memory-engine.js'
import { Waiters } from '../../../test/support/waiters.js'

/**
 * When a held read takes its page. `page-then-wait`: when the read starts, so what is published
 * while it is held is not in the page (a slow reply). `wait-then-page`: on release, so the page
 * holds it too (a slow request).
 */
export type HoldMode = 'page-then-wait' | 'wait-then-page'

interface Hold {
  channel: string
  mode: HoldMode
  release: Promise<void>
}

export class FeedControlEngine extends MemoryEngine {
  /** The node's handler, as the gateway gave it to `start`. */
  #node: EngineHandler | undefined
  readonly #lose = new Map<string, number>()
  #down = false
  #failSubscribes = 0
  #failHistory = 0
  #failUnsubscribes = 0
  readonly #holds: Hold[] = []
  readonly #waiters = new Waiters()
  /** Channels passed to `subscribe` / `unsubscribe`, in call order (failed calls included). */
  readonly subscribes: string[] = []
  readonly unsubscribes: string[] = []
  /** Every completed history read: its channel, whether it asked for publications `since` a position, and its limit. */
  readonly reads: { channel: string; since: boolean; limit: number }[] = []
  /** History reads that have started and wait for a release. */
  held = 0
  /** History reads failed by `failHistory`. */
  failedReads = 0

  override async start(handler: EngineHandler): Promise<void> {
    this.#node = handler
    await super.start({
      onPublication: (channel, pub) => this.#feed(channel, pub),
      onJoinLeave: (channel, kind, info) => handler.onJoinLeave(channel, kind, info),
      onControl: (msg) => handler.onControl(msg),
    })
  }

  /** The next `count` publications of `channel` are stored but never reach this node's live feed. */
  loseFeed(channel: string, count = 1): void {
    this.#lose.set(channel, (this.#lose.get(channel) ?? 0) + count)
  }

  /** Hand the node a publication directly (a repeat, or one arriving late), as a backend's feed would. */
  feed(channel: string, pub: StreamPublication): void {
    this.#node?.onPublication(channel, pub)
  }

  /** Hand the node a join or leave directly (one arriving after the node unsubscribed the channel). */
  feedJoinLeave(channel: string, kind: 'join' | 'leave', info: ClientInfo): void {
    this.#node?.onJoinLeave(channel, kind, info)
  }

  /** The feed goes down: the node hears `onStateChange(false)` and nothing reaches it until `restore`. */
  outage(): void {
    this.#down = true
    this.#node?.onStateChange?.(false)
  }

  /** The feed is back: the node hears `onStateChange(true)` (and resyncs its channels). */
  restore(): void {
    this.#down = false
    this.#node?.onStateChange?.(true)
  }

  /** The next `count` calls fail with engine_unavailable. */
  failSubscribe(count = 1): void {
    this.#failSubscribes += count
  }

  failHistory(count = 1): void {
    this.#failHistory += count
  }

  failUnsubscribe(count = 1): void {
    this.#failUnsubscribes += count
  }

  /** Hold the next history read of `channel` until the returned function is called. */
  holdHistory(channel: string, mode: HoldMode): () => void {
    let release!: () => void
    this.#holds.push({ channel, mode, release: new Promise<void>((r) => (release = r)) })
    return release
  }

  /** Resolves once `cond` holds, checked after every feed item, read and held read; rejects after `ms`. */
  until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
    return this.#waiters.until(cond, ms, () => `timed out after ${ms} ms waiting for ${what}`)
  }

  override async subscribe(channel: string): Promise<void> {
    this.subscribes.push(channel)
    if (this.#failSubscribes > 0) {
      this.#failSubscribes--
      throw new HoldfastError('engine_unavailable', 'engine unavailable (test)')
    }
    return super.subscribe(channel)
  }

  override async unsubscribe(channel: string): Promise<void> {
    this.unsubscribes.push(channel)
    this.#waiters.notify()
    if (this.#failUnsubscribes > 0) {
      this.#failUnsubscribes--
      throw new HoldfastError('engine_unavailable', 'engine unavailable (test)')
    }
    return super.unsubscribe(channel)
  }

  override async history(channel: string, q: HistoryQuery): Promise<HistoryPage> {
    if (this.#failHistory > 0) {
      this.#failHistory--
      this.failedReads++
      this.#waiters.notify()
      throw new HoldfastError('engine_unavailable', 'engine unavailable (test)')
    }
    const i = this.#holds.findIndex((h) => h.channel === channel)
    const hold = i === -1 ? undefined : this.#holds.splice(i, 1)[0]
    let page: HistoryPage
    if (hold === undefined) page = await super.history(channel, q)
    else {
      const early = hold.mode === 'page-then-wait' ? await super.history(channel, q) : undefined
      this.held++
      this.#waiters.notify()
      await hold.release
      this.held--
      page = early ?? (await super.history(channel, q))
    }
    this.reads.push({ channel, since: q.since !== undefined, limit: q.limit })
    this.#waiters.notify()
    return page
  }

  #feed(channel: string, pub: StreamPublication): void {
    const lose = this.#lose.get(channel) ?? 0
    if (this.#down || lose > 0) {
      if (lose > 0) this.#lose.set(channel, lose - 1)
      return
    }
    this.#node?.onPublication(channel, pub)
    this.#waiters.notify()
  }
}
