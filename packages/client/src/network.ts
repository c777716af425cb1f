interface NetworkEvents {
  addEventListener(type: string, listener: () => void): void
  removeEventListener(type: string, listener: () => void): void
}

/**
 * The browser's `online`/`offline` events, where the runtime has them (`globalThis.addEventListener`).
 * The OS knows the network is gone long before a heartbeat would notice. `visibilitychange` is
 * deliberately not watched: a hidden tab is still online, and dropping it would only cause a storm
 * of reconnects when tabs come back.
 */
export class NetworkWatcher {
  #target: NetworkEvents | undefined

  constructor(
    private readonly onOffline: () => void,
    private readonly onOnline: () => void,
  ) {}

  start(): void {
    if (this.#target !== undefined) return
    const g = globalThis as Partial<NetworkEvents>
    if (typeof g.addEventListener !== 'function' || typeof g.removeEventListener !== 'function') return
    const target = g as NetworkEvents
    target.addEventListener('offline', this.onOffline)
    target.addEventListener('online', this.onOnline)
    this.#target = target
  }

  stop(): void {
    const target = this.#target
    if (target === undefined) return
    target.removeEventListener('offline', this.onOffline)
    target.removeEventListener('online', this.onOnline)
    this.#target = undefined
  }
}
