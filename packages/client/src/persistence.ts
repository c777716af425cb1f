import type { RpcResult, StreamPosition } from '@holdfast/protocol'
import type { HoldfastError } from '@holdfast/protocol'
import type { DiscardedCommand, QueueEvent, RestoredCommand, StoredCommandInfo } from './events.js'
import type { Outbox, OutboxEntry, QueuedCommand } from './outbox.js'
import { defaultLocks, type ClientStorage, type LockManagerLike } from './storage.js'
import type { StoredCommand, StoredRecord } from './stored-record.js'

export type { StoredCommand, StoredRecord } from './stored-record.js'

/**
 * Keys: `holdfast:o:<owner>:<seq>` (a stored command), `holdfast:s:<owner>` (the owner's session),
 * `holdfast:p:<channel>` (a position).
 */
const OUTBOX = 'holdfast:o:'
const SESSION = 'holdfast:s:'
const POSITION = 'holdfast:p:'
const LOCK = 'holdfast-owner:'
/**
 * How long a starting client waits for an owner that has stored commands and still holds its lock.
 * A reload starts the new page while the old one's locks are being released; waiting this long
 * lets the new page take over its predecessor (commands first in line, same session) instead of
 * leaving them to a later takeover.
 */
const PREDECESSOR_GRACE_MS = 200
/** Most positions kept; past it the least recently written are deleted at start. */
export const MAX_STORED_POSITIONS = 1000

/** What the store needs from the client, for the outbox entries it keeps on storage. */
export interface StoreHost {
  outbox: Outbox
  idempotencyWindowMs: number
  /** Encoded size of a command (counted against the outbox's byte bound). */
  sizeOf(command: QueuedCommand): number
  /** Start the command's deadline timer. */
  arm(entry: OutboxEntry, inMs: number, timeoutMs: number): void
  /**
   * A `HoldfastError`. The client makes it, so that this module (a chunk loaded on demand) imports
   * no protocol code a bundler would split out beside it.
   */
  error(code: 'dropped' | 'storage_failed', message: string, cause?: unknown): HoldfastError
  /** The outbox changed: send what may go now. */
  pump(): void
  /** The `queue` event that announces restored (and discarded) commands. */
  announce(event: QueueEvent): void
}

export interface LoadedRecord {
  key: string
  record: StoredRecord
}

export interface StoredSession {
  id: string
  token: string
}

export interface Restored {
  records: LoadedRecord[]
  positions: Map<string, StreamPosition>
  /**
   * The newest session of the owners taken over at start. Resuming it keeps the server's dedupe
   * scope of an anonymous client (its session), so commands sent before a reload are not
   * performed twice.
   */
  session: StoredSession | undefined
}

function isRecord(v: unknown): v is StoredRecord {
  if (typeof v !== 'object' || v === null) return false
  const r = v as Partial<StoredRecord>
  const c = r.command
  return (
    r.v === 1 &&
    typeof r.seq === 'number' &&
    typeof r.createdAt === 'number' &&
    typeof r.deadline === 'number' &&
    (r.sentAt === undefined || typeof r.sentAt === 'number') &&
    typeof c === 'object' &&
    c !== null &&
    typeof c.msgId === 'string' &&
    ((c.type === 'publish' && typeof c.channel === 'string') || (c.type === 'rpc' && typeof c.method === 'string'))
  )
}

/**
 * The client's view of its storage: its own stored commands, the commands of owners that are gone
 * (a reloaded or closed tab, a crashed process), and subscription positions.
 *
 * Ownership: every client is an owner with a random id and holds the lock `holdfast-owner:<id>` for
 * its lifetime. Another client takes over (and sends) an owner's commands only while holding that
 * owner's lock, so two live tabs never both send one command; an owner that is still alive is
 * waited for, and adopted when its lock comes free.
 */
export class Persistence {
  readonly owner: string
  readonly #storage: ClientStorage
  readonly #locks: LockManagerLike
  /** Per key, the last operation queued: set/delete of one key apply in call order. */
  readonly #ops = new Map<string, Promise<void>>()
  readonly #positions = new Map<string, StreamPosition | null>()
  readonly #positionBusy = new Set<string>()
  /** Resolves every lock this client holds (its own and adopted owners'). */
  readonly #releases: Array<() => void> = []
  /** Cancels the lock requests still waiting for a live owner. */
  readonly #abort = new AbortController()
  #closed = false
  readonly #onError: (err: unknown, what: string) => void

  /** Commands restored from storage that still wait for their ack (the client's `restored`). */
  restored: readonly RestoredCommand[] = []
  readonly #host: StoreHost | undefined

  constructor(
    storage: ClientStorage,
    owner: string,
    onError: (err: unknown, what: string) => void,
    host?: StoreHost,
    locks: LockManagerLike = defaultLocks(),
  ) {
    this.#onError = onError
    this.#host = host
    this.#storage = storage
    this.#locks = locks
    this.owner = owner
  }

  /**
   * Claim our own id, take over the commands (and session) of owners that are gone, and read the
   * positions. Owners that are alive are waited for in the background: `onAdopt` gets their
   * commands when they go.
   */
  async start(onAdopt: (records: LoadedRecord[]) => void): Promise<Restored> {
    await this.#hold(this.owner, true)
    /** owner -> it has stored commands */
    const owners = new Map<string, boolean>()
    const ownerOf = (key: string, prefix: string, end: number): void => {
      const owner = key.slice(prefix.length, end)
      if (owner.length > 0 && owner !== this.owner) owners.set(owner, prefix === OUTBOX || owners.get(owner) === true)
    }
    for (const key of await this.#storage.keys(OUTBOX)) ownerOf(key, OUTBOX, key.lastIndexOf(':'))
    for (const key of await this.#storage.keys(SESSION)) ownerOf(key, SESSION, key.length)
    const taken: string[] = []
    await Promise.all(
      [...owners].map(async ([owner, hasCommands]) => {
        if (await this.#hold(owner, true)) return taken.push(owner)
        if (!hasCommands) return undefined
        const granted = this.#hold(owner, false)
        let timer: ReturnType<typeof setTimeout> | undefined
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), PREDECESSOR_GRACE_MS)))
        const first = await Promise.race([granted, late])
        clearTimeout(timer)
        if (first === true) return taken.push(owner)
        granted
          .then(async (held) => {
            if (held && !this.#closed) onAdopt(await this.#load(owner))
          })
          .catch((err: unknown) => {
            if (!this.#closed) this.#onError(err, 'adopting stored commands')
          })
        return undefined
      }),
    )
    const records: LoadedRecord[] = []
    let session: (StoredSession & { at: number }) | undefined
    for (const owner of taken) {
      records.push(...(await this.#load(owner)))
      const s = await this.#takeSession(owner)
      if (s !== undefined && (session === undefined || s.at > session.at)) session = s
    }
    return { records, positions: await this.#loadPositions(), session: session === undefined ? undefined : { id: session.id, token: session.token } }
  }

  /** Read and delete a gone owner's session. */
  async #takeSession(owner: string): Promise<(StoredSession & { at: number }) | undefined> {
    const key = SESSION + owner
    const text = await this.#storage.get(key)
    if (text === undefined) return undefined
    this.remove(key)
    try {
      const v = JSON.parse(text) as Partial<StoredSession & { at: number }>
      if (typeof v.id === 'string' && typeof v.token === 'string') return { id: v.id, token: v.token, at: typeof v.at === 'number' ? v.at : 0 }
    } catch {
      // Unreadable: gone with the delete above.
    }
    return undefined
  }

  /** Remember this client's session, so whoever takes over after a reload can resume it. */
  saveSession(session: StoredSession): void {
    if (this.#closed) return
    const key = SESSION + this.owner
    this.#op(key, () => this.#storage.set(key, JSON.stringify({ id: session.id, token: session.token, at: Date.now() }))).catch((err: unknown) =>
      this.#onError(err, 'saving the session'),
    )
  }

  /**
   * Hold `holdfast-owner:<owner>` until close(). `ifAvailable`: false at once when someone has it;
   * otherwise wait for it (false if this client closes first).
   */
  #hold(owner: string, ifAvailable: boolean): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const options = ifAvailable ? { ifAvailable } : { signal: this.#abort.signal }
      this.#locks
        .request(LOCK + owner, options, (lock) => {
          if (lock === null || this.#closed) {
            resolve(false)
            return undefined
          }
          resolve(true)
          return new Promise<void>((release) => this.#releases.push(release))
        })
        .catch(reject)
    })
  }

  async #load(owner: string): Promise<LoadedRecord[]> {
    const out: LoadedRecord[] = []
    for (const key of await this.#storage.keys(`${OUTBOX}${owner}:`)) {
      const text = await this.#storage.get(key)
      let record: unknown
      try {
        record = text === undefined ? undefined : JSON.parse(text)
      } catch {
        record = undefined
      }
      if (isRecord(record)) out.push({ key, record })
      else if (text !== undefined) {
        this.#onError(new Error(`unreadable stored command at ${key}`), 'reading stored commands')
        this.remove(key)
      }
    }
    return out
  }

  async #loadPositions(): Promise<Map<string, StreamPosition>> {
    const rows: Array<{ channel: string; pos: StreamPosition; at: number; key: string }> = []
    for (const key of await this.#storage.keys(POSITION)) {
      const text = await this.#storage.get(key)
      try {
        const v = JSON.parse(text ?? '') as { epoch?: unknown; offset?: unknown; at?: unknown }
        if (typeof v.epoch === 'string' && typeof v.offset === 'number' && Number.isSafeInteger(v.offset) && v.offset >= 0) {
          rows.push({ channel: key.slice(POSITION.length), pos: { epoch: v.epoch, offset: v.offset }, at: typeof v.at === 'number' ? v.at : 0, key })
          continue
        }
      } catch {
        // Unreadable: deleted below.
      }
      this.remove(key)
    }
    rows.sort((a, b) => b.at - a.at)
    for (const row of rows.slice(MAX_STORED_POSITIONS)) this.remove(row.key)
    return new Map(rows.slice(0, MAX_STORED_POSITIONS).map((r) => [r.channel, r.pos]))
  }

  /**
   * Put stored commands back in the outbox, oldest first (`front`: before anything issued since
   * this client started), and tell the application in one `queue` event. Not put back, and
   * deleted: copies of a message already queued; commands past their deadline (`expired`) or sent
   * longer ago than the server remembers message ids (`unknown_outcome`); what does not fit the
   * outbox's bounds (`queue_full`, the newest).
   */
  restore(loaded: LoadedRecord[], front: boolean): void {
    const host = this.#host
    if (host === undefined) return
    const now = Date.now()
    const seen = new Set<string>()
    for (const e of host.outbox.entries()) if (e.record !== undefined) seen.add(e.record.command.msgId)
    const restored: RestoredCommand[] = []
    const discarded: DiscardedCommand[] = []
    const entries: OutboxEntry[] = []
    loaded.sort((a, b) => a.record.createdAt - b.record.createdAt || a.record.seq - b.record.seq)
    for (const { key, record } of loaded) {
      const c = record.command
      // A copy left by an interrupted takeover: the same message, sent once.
      if (seen.has(c.msgId)) {
        this.remove(key)
        continue
      }
      const info: StoredCommandInfo = {
        type: c.type,
        ...(c.type === 'publish' ? { channel: c.channel as string } : { method: c.method as string }),
        data: c.data,
        msgId: c.msgId,
        createdAt: record.createdAt,
        sent: record.sentAt !== undefined,
      }
      const reason = now >= record.deadline ? 'expired' : record.sentAt !== undefined && now - record.sentAt > host.idempotencyWindowMs ? 'unknown_outcome' : undefined
      const command = (
        c.type === 'publish'
          ? { type: 'publish', channel: c.channel, data: c.data, msgId: c.msgId }
          : { type: 'rpc', method: c.method, msgId: c.msgId, ...(c.data === undefined ? {} : { data: c.data }) }
      ) as QueuedCommand
      let settle: { resolve: (r: unknown) => void; reject: (e: HoldfastError) => void } = { resolve: () => {}, reject: () => {} }
      const result = new Promise<unknown>((resolve, reject) => (settle = { resolve, reject }))
      result.catch(() => {})
      let entry: OutboxEntry | undefined
      if (reason === undefined) {
        try {
          entry = host.outbox.add(command, host.sizeOf(command), (r) => settle.resolve(c.type === 'rpc' ? (r as RpcResult).data : r), settle.reject)
        } catch {
          entry = undefined
        }
      }
      if (entry === undefined) {
        this.remove(key)
        discarded.push({ ...info, reason: reason ?? 'queue_full' })
        continue
      }
      seen.add(c.msgId)
      entry.key = key
      entry.record = record
      host.arm(entry, record.deadline - now, record.deadline - record.createdAt)
      entries.push(entry)
      const e = entry
      restored.push({ ...info, result, drop: () => host.outbox.reject(e, host.error('dropped', `${c.type} ${c.msgId} dropped by the application`)) })
    }
    if (front) host.outbox.moveToFront(entries)
    if (restored.length > 0 || discarded.length > 0) {
      this.restored = [...this.restored, ...restored]
      for (const r of restored) {
        const settled = (): void => {
          this.restored = this.restored.filter((x) => x !== r)
        }
        r.result.then(settled, settled)
      }
      host.announce({ size: host.outbox.size, bytes: host.outbox.bytes, restored, discarded })
    }
    host.pump()
  }

  /** Write the entry's record; it may be sent once the write is done. A failed write rejects the call. */
  persist(entry: OutboxEntry): void {
    const host = this.#host
    if (host === undefined || entry.record === undefined) return
    entry.key ??= this.keyFor(entry.seq)
    entry.writing = true
    this.write(entry.key, entry.record).then(
      () => {
        entry.writing = false
        host.pump()
      },
      (cause: unknown) => {
        entry.writing = false
        const message = `${entry.command.type} could not be stored, so it was not sent: ${cause instanceof Error ? cause.message : String(cause)}`
        host.outbox.reject(entry, host.error('storage_failed', message, cause))
        host.pump()
      },
    )
  }

  /**
   * true when the entry may leave: it is stored, and the storage knows it is being sent (so that a
   * reload much later does not resend it past the server's dedupe window). Otherwise starts the
   * write that makes it so; its completion pumps again.
   */
  durable(entry: OutboxEntry): boolean {
    const record = entry.record
    if (record === undefined) return true
    if (entry.writing) return false
    if (record.sentAt !== undefined) return true
    record.sentAt = Date.now()
    this.persist(entry)
    return false
  }

  /** The key of our command number `seq`. */
  keyFor(seq: number): string {
    return `${OUTBOX}${this.owner}:${seq}`
  }

  /** Write a command record; resolves once the storage has it. */
  write(key: string, record: StoredRecord): Promise<void> {
    return this.#op(key, () => this.#storage.set(key, JSON.stringify(record)))
  }

  /** Forget a command (acked, failed, expired, dropped). Errors are reported, not thrown. */
  remove(key: string): void {
    this.#op(key, () => this.#storage.delete(key)).catch((err: unknown) => this.#onError(err, 'deleting a stored command'))
  }

  /**
   * Remember a subscription's position (null: forget it). Write-behind and coalesced per channel:
   * at most one write per channel is in flight, and the next one carries the latest position, so a
   * busy channel costs one storage write per write latency, not one per publication.
   */
  savePosition(channel: string, pos: StreamPosition | null): void {
    if (this.#closed) return
    this.#positions.set(channel, pos)
    if (!this.#positionBusy.has(channel)) this.#writePosition(channel)
  }

  #writePosition(channel: string): void {
    if (!this.#positions.has(channel)) return
    const pos = this.#positions.get(channel) ?? null
    this.#positions.delete(channel)
    this.#positionBusy.add(channel)
    const key = POSITION + channel
    const value = pos === null ? undefined : JSON.stringify({ epoch: pos.epoch, offset: pos.offset, at: Date.now() })
    this.#op(key, () => (value === undefined ? this.#storage.delete(key) : this.#storage.set(key, value)))
      .catch((err: unknown) => this.#onError(err, 'saving a subscription position'))
      .finally(() => {
        this.#positionBusy.delete(channel)
        this.#writePosition(channel)
      })
  }

  #op(key: string, run: () => Promise<void>): Promise<void> {
    const prev = this.#ops.get(key) ?? Promise.resolve()
    const next = prev.then(run, run)
    this.#ops.set(key, next)
    const forget = (): void => {
      if (this.#ops.get(key) === next) this.#ops.delete(key)
    }
    next.then(forget, forget)
    return next
  }

  /**
   * Release every lock once the writes and deletes already queued are done: another client may
   * then adopt what is left in storage, and only that.
   */
  close(): void {
    this.#closed = true
    this.#abort.abort()
    const releases = this.#releases.splice(0)
    void Promise.allSettled([...this.#ops.values()]).then(() => {
      for (const release of releases) release()
    })
  }
}
