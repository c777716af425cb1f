import { HoldfastError } from '@holdfast/protocol/internal'

type Listener<T> = (payload: T) => void

/** What went wrong, for an error message: the message of an `Error`, or the thrown value as text. */
export function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause)
}

/**
 * A typed event emitter that isolates the SDK from its listeners: an exception thrown by
 * application code is caught and reported (as an `error` event, or on the console when that is
 * the listener that threw or nobody listens), and never unwinds into the state machine that emitted.
 */
export class TypedEmitter<Events extends { error: HoldfastError }> {
  readonly #listeners = new Map<keyof Events, Listener<never>[]>()

  /** Add a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const list = this.#listeners.get(event)
    if (list === undefined) this.#listeners.set(event, [listener])
    else list.push(listener)
    return () => this.off(event, listener)
  }

  /** Add a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(event, (payload) => {
      off()
      listener(payload)
    })
    return off
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const list = this.#listeners.get(event)
    if (list === undefined) return
    const i = list.indexOf(listener)
    if (i !== -1) list.splice(i, 1)
    if (list.length === 0) this.#listeners.delete(event)
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0
  }

  protected removeAllListeners(): void {
    this.#listeners.clear()
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.#listeners.get(event)
    if (list === undefined) {
      if (event === 'error') console.error('holdfast client: unhandled error', payload)
      return
    }
    // A copy: listeners that add or remove listeners must not disturb this round.
    for (const listener of [...list] as Listener<Events[K]>[]) {
      try {
        listener(payload)
      } catch (cause) {
        this.#reportListenerError(event, cause)
      }
    }
  }

  #reportListenerError(event: keyof Events, cause: unknown): void {
    if (event === 'error' || this.listenerCount('error') === 0) {
      console.error(`holdfast client: a "${String(event)}" listener threw`, cause)
      return
    }
    const err = new HoldfastError('internal', `a "${String(event)}" listener threw: ${messageOf(cause)}`, { cause, temporary: false })
    this.emit('error', err as Events['error'])
  }
}
