interface EventTargetLike {
  addEventListener(type: string, listener: (ev: never) => void): void
  removeEventListener(type: string, listener: (ev: never) => void): void
}

/** What the page tells the client about itself. */
export interface PageEvents {
  offline(): void
  online(): void
  /** The page became visible again, or was resumed after being frozen: check the connection. */
  wake(reason: string): void
  /** `pagehide` into the back/forward cache: let go of the socket (a page with an open socket cannot be cached). */
  suspend(): void
  /** `pageshow` out of the back/forward cache. */
  restore(): void
}

/**
 * The browser's page lifecycle, where the runtime has it (`globalThis.addEventListener`, `document`):
 * - `offline`/`online` (window): the OS knows the network is gone long before a heartbeat would;
 * - `visibilitychange` to visible (document) and `resume` (document, after a freeze): timers were
 *   throttled or stopped, so the connection's state is unknown until checked. A hidden tab is left
 *   connected: dropping it would only cause a storm of reconnects when tabs come back;
 * - `pagehide`/`pageshow` with `persisted` (window): entering and leaving the back/forward cache.
 */
export class PageWatcher {
  #window: EventTargetLike | undefined
  #document: (EventTargetLike & { visibilityState?: string }) | undefined

  readonly #events: PageEvents

  constructor(events: PageEvents) {
    this.#events = events
  }

  start(): void {
    if (this.#window !== undefined) return
    const g = globalThis as Partial<EventTargetLike> & { document?: EventTargetLike & { visibilityState?: string } }
    if (typeof g.addEventListener !== 'function' || typeof g.removeEventListener !== 'function') return
    this.#window = g as EventTargetLike
    for (const [type, fn] of this.#windowListeners) this.#window.addEventListener(type, fn)
    const doc = g.document
    if (doc !== undefined && typeof doc.addEventListener === 'function') {
      this.#document = doc
      for (const [type, fn] of this.#documentListeners) doc.addEventListener(type, fn)
    }
  }

  stop(): void {
    for (const [type, fn] of this.#windowListeners) this.#window?.removeEventListener(type, fn)
    for (const [type, fn] of this.#documentListeners) this.#document?.removeEventListener(type, fn)
    this.#window = undefined
    this.#document = undefined
  }

  readonly #windowListeners: ReadonlyArray<[string, (ev: never) => void]> = [
    ['offline', () => this.#events.offline()],
    ['online', () => this.#events.online()],
    ['pagehide', (ev: { persisted?: boolean }) => ev.persisted === true && this.#events.suspend()],
    ['pageshow', (ev: { persisted?: boolean }) => ev.persisted === true && this.#events.restore()],
  ]

  readonly #documentListeners: ReadonlyArray<[string, (ev: never) => void]> = [
    ['visibilitychange', () => this.#document?.visibilityState === 'visible' && this.#events.wake('page visible again')],
    ['resume', () => this.#events.wake('page resumed after a freeze')],
  ]
}
