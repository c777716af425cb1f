import { HoldfastError } from '@holdfast/protocol/internal'
import type { HistoryCommand, PresenceCommand, PresenceStatsCommand, PublishCommand, RpcCommand } from '@holdfast/protocol'
import type { StoredRecord } from './stored-record.js'

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never

/** A command that waits in the outbox for a connection and an ack. Its wire `id` is given per send. */
export type QueuedCommand = WithoutId<PublishCommand | RpcCommand | PresenceCommand | PresenceStatsCommand | HistoryCommand>

type Timer = ReturnType<typeof setTimeout>

export interface OutboxEntry {
  readonly seq: number
  readonly command: QueuedCommand
  /** Encoded size, counted against `maxQueuedBytes`. */
  readonly bytes: number
  /**
   * queued: waits for a connection, the command budget, or the end of a retry hold;
   * sent: in flight on the current connection.
   */
  state: 'queued' | 'sent'
  /** Temporary-error refusals so far. */
  attempt: number
  /** Wire id of the send in flight, if any. */
  wireId: number | undefined
  /**
   * In flight when a temporary refusal of another command came back: it may be refused too, so
   * nothing behind it is sent until its own reply is in (a later command must not overtake it).
   */
  suspect?: boolean
  deadline: Timer | undefined
  /** With a `storage`: where this command is stored, and its stored form. */
  key: string | undefined
  record: StoredRecord | undefined
  /** A write of `record` is in flight: the command may not leave before it is stored. */
  writing: boolean
  readonly resolve: (result: unknown) => void
  readonly reject: (err: HoldfastError) => void
}

export interface OutboxLimits {
  maxCommands: number
  maxBytes: number
}

/**
 * Commands waiting for an ack, in the order the application issued them. Bounded by count and by
 * encoded bytes; a command that does not fit is refused (the newest loses, loudly), never an older
 * one dropped behind the application's back.
 */
export class Outbox {
  // A Map iterates in insertion order: the order the application issued the commands.
  #entries = new Map<number, OutboxEntry>()
  #bytes = 0
  #seq = 0

  readonly #limits: OutboxLimits
  readonly #onChange: (size: number, bytes: number) => void
  readonly #onRemoved: (entry: OutboxEntry) => void

  constructor(limits: OutboxLimits, onChange: (size: number, bytes: number) => void, onRemoved: (entry: OutboxEntry) => void = () => {}) {
    this.#limits = limits
    this.#onChange = onChange
    this.#onRemoved = onRemoved
  }

  get size(): number {
    return this.#entries.size
  }

  get bytes(): number {
    return this.#bytes
  }

  /** Add a command; throws `HoldfastError('queue_full')` when it does not fit. */
  add(command: QueuedCommand, bytes: number, resolve: (result: unknown) => void, reject: (err: HoldfastError) => void): OutboxEntry {
    if (this.#entries.size >= this.#limits.maxCommands) {
      throw new HoldfastError('queue_full', `outbox full: ${this.#entries.size} commands waiting (maxQueuedCommands ${this.#limits.maxCommands})`)
    }
    if (this.#bytes + bytes > this.#limits.maxBytes) {
      throw new HoldfastError(
        'queue_full',
        `outbox full: ${this.#bytes} + ${bytes} bytes exceeds maxQueuedBytes ${this.#limits.maxBytes}`,
      )
    }
    const entry: OutboxEntry = {
      seq: ++this.#seq,
      command,
      bytes,
      state: 'queued',
      attempt: 0,
      wireId: undefined,
      deadline: undefined,
      key: undefined,
      record: undefined,
      writing: false,
      resolve,
      reject,
    }
    this.#entries.set(entry.seq, entry)
    this.#bytes += bytes
    this.#onChange(this.#entries.size, this.#bytes)
    return entry
  }

  /** Put these entries (already added) first, in the given order: restored commands go before newer ones. */
  moveToFront(first: readonly OutboxEntry[]): void {
    const front = new Map(first.filter((e) => this.has(e)).map((e) => [e.seq, e] as const))
    for (const [seq, e] of this.#entries) if (!front.has(seq)) front.set(seq, e)
    this.#entries = front
  }

  has(entry: OutboxEntry): boolean {
    return this.#entries.get(entry.seq) === entry
  }

  /** Entries in issue order. */
  entries(): IterableIterator<OutboxEntry> {
    return this.#entries.values()
  }

  /** Take the entry out and resolve it. No-op when it was already settled. */
  resolve(entry: OutboxEntry, result: unknown): void {
    if (this.#remove(entry)) entry.resolve(result)
  }

  /** Take the entry out and reject it. No-op when it was already settled. */
  reject(entry: OutboxEntry, err: HoldfastError): void {
    if (this.#remove(entry)) entry.reject(err)
  }

  /** Reject every entry (client closed). */
  rejectAll(err: () => HoldfastError): void {
    for (const entry of [...this.#entries.values()]) this.reject(entry, err())
  }

  #remove(entry: OutboxEntry): boolean {
    if (!this.has(entry)) return false
    this.#entries.delete(entry.seq)
    this.#bytes -= entry.bytes
    clearTimeout(entry.deadline)
    entry.deadline = undefined
    this.#onRemoved(entry)
    this.#onChange(this.#entries.size, this.#bytes)
    return true
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/**
 * A client message id for publish/rpc idempotency: a UUID where `crypto.randomUUID` exists (it needs a
 * secure context in browsers), else 128 random bits as hex from `getRandomValues`.
 */
export function newMessageId(): string {
  const c = (globalThis as { crypto?: Partial<Crypto> }).crypto
  if (typeof c?.randomUUID === 'function') return c.randomUUID()
  const bytes = new Uint8Array(16)
  if (typeof c?.getRandomValues === 'function') c.getRandomValues(bytes)
  // Last resort for exotic runtimes without Web Crypto: not cryptographic, still unique enough for dedupe.
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256)
  let out = ''
  for (const b of bytes) out += HEX[b]
  return out
}
