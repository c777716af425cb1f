import { HoldfastError } from '@holdfast/protocol'

/** How long a failure holds other publications of its channel back at most, in ms. */
export const GATE_MS = 5000
/** Most publication ids one gate remembers (a bound on what a failure can make a node hold). */
const MAX_GATE_KEYS = 10_000

interface Gate {
  keys: Set<string>
  until: number
}

/**
 * Keeps each publisher's publications to a channel in the order it issued them across a failed
 * publish. A publication refused with a temporary error is retried by its publisher; one it sent
 * before it heard of the refusal may arrive meanwhile, and if Redis answers again by then it would
 * be stored first — the retry would land after it. So after a failure a channel's gate closes on
 * this node: until every publication it knows has been retried and stored (or `GATE_MS` passed),
 * only those pass; any other is refused once (temporary) and joins them. Publishers resend theirs
 * in order, and they are stored in order.
 */
export class PublishOrder {
  readonly #gates = new Map<string, Gate>()
  readonly #now: () => number

  constructor(now: () => number = () => performance.now()) {
    this.#now = now
  }

  /**
   * Throws a temporary error when the channel's gate holds this publication back. Publications
   * without an id (server-side, not retried by a publisher) have no order to keep and always pass.
   */
  admit(channel: string, key: string | undefined): void {
    if (key === undefined) return
    const gate = this.#open(channel)
    if (gate === undefined || gate.keys.has(key)) return
    if (gate.keys.size < MAX_GATE_KEYS) gate.keys.add(key)
    throw new HoldfastError('engine_unavailable', 'an earlier publication to this channel failed: retry in order')
  }

  /** These publications failed with a temporary error: close (or extend) the channel's gate. */
  failed(channel: string, keys: Iterable<string | undefined>): void {
    const ids = [...keys].filter((k): k is string => k !== undefined)
    if (ids.length === 0) return
    const gate = this.#open(channel) ?? { keys: new Set<string>(), until: 0 }
    for (const k of ids) if (gate.keys.size < MAX_GATE_KEYS) gate.keys.add(k)
    gate.until = this.#now() + GATE_MS
    this.#gates.set(channel, gate)
    // Forgotten once it expired, whether or not anything comes again.
    setTimeout(() => this.#open(channel), GATE_MS + 10).unref()
  }

  /** This publication was stored: it no longer holds the gate. */
  stored(channel: string, key: string | undefined): void {
    if (key === undefined) return
    const gate = this.#gates.get(channel)
    if (gate === undefined) return
    gate.keys.delete(key)
    if (gate.keys.size === 0) this.#gates.delete(channel)
  }

  /** The channel's gate, unless there is none or it expired (then it is dropped). */
  #open(channel: string): Gate | undefined {
    const gate = this.#gates.get(channel)
    if (gate === undefined) return undefined
    if (this.#now() < gate.until) return gate
    this.#gates.delete(channel)
    return undefined
  }
}
