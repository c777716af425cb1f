/**
 * A connection's subscriptions by channel: the part of a Map the server uses (get, has, set,
 * delete, size, iteration in insertion order), for a handful of entries. Most connections hold one
 * to a few subscriptions, and a Map costs about 180 bytes before its first entry; here the records
 * are chained through themselves (`next`), so the list costs one small object. Past
 * `INDEX_FROM` entries, lookups go through a Map built then (the bound is 128 by default).
 */

/** What the list needs of a record: where it is filed, and the next one. */
export interface Listed {
  channel: string
  next: this | undefined
}

/** From this many entries on, lookups use an index instead of walking the chain. */
const INDEX_FROM = 9

export class SubscriptionList<T extends Listed> implements ReadonlyMap<string, T> {
  #head: T | undefined = undefined
  #tail: T | undefined = undefined
  #index: Map<string, T> | undefined = undefined
  size = 0

  get(channel: string): T | undefined {
    if (this.#index !== undefined) return this.#index.get(channel)
    for (let r = this.#head; r !== undefined; r = r.next) if (r.channel === channel) return r
    return undefined
  }

  has(channel: string): boolean {
    return this.get(channel) !== undefined
  }

  /** File `record` under `channel`, last (one filed there before is removed first). */
  set(channel: string, record: T): this {
    this.delete(channel)
    record.channel = channel
    record.next = undefined
    if (this.#tail === undefined) this.#head = record
    else this.#tail.next = record
    this.#tail = record
    this.size++
    if (this.#index !== undefined) this.#index.set(channel, record)
    else if (this.size >= INDEX_FROM) {
      this.#index = new Map()
      for (let r = this.#head; r !== undefined; r = r.next) this.#index.set(r.channel, r)
    }
    return this
  }

  delete(channel: string): boolean {
    let prev: T | undefined
    for (let r = this.#head; r !== undefined; prev = r, r = r.next) {
      if (r.channel !== channel) continue
      if (prev === undefined) this.#head = r.next
      else prev.next = r.next
      if (this.#tail === r) this.#tail = prev
      // The record keeps its `next` while an iteration may stand on it (deleting while iterating is safe).
      this.size--
      if (this.#index !== undefined) {
        this.#index.delete(channel)
        if (this.size < INDEX_FROM / 2) this.#index = undefined
      }
      return true
    }
    return false
  }

  forEach(fn: (record: T, channel: string, list: this) => void, thisArg?: unknown): void {
    for (const [channel, r] of this) fn.call(thisArg, r, channel, this)
  }

  entries(): IterableIterator<[string, T]> {
    return this[Symbol.iterator]()
  }

  *keys(): IterableIterator<string> {
    for (const [channel] of this) yield channel
  }

  *values(): IterableIterator<T> {
    for (const [, r] of this) yield r
  }

  /**
   * [channel, record] pairs in the order they were filed, as a Map's entries. Deleting while
   * iterating is safe: a removed record still leads on through `next`, and records no longer
   * filed are skipped.
   */
  *[Symbol.iterator](): IterableIterator<[string, T]> {
    for (let r = this.#head; r !== undefined; r = r.next) if (r === this.#head || this.get(r.channel) === r) yield [r.channel, r]
  }
}
