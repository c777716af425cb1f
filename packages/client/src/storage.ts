/**
 * Where the client keeps what must survive a reload: unacknowledged publish/rpc commands and the
 * last position of each subscription. A small async key-value interface, so any store fits
 * (IndexedDB, files, localStorage, a native app's database). Every method may reject; the client
 * reports that as a `storage_failed` error and never sends a command it could not store.
 */
export interface ClientStorage {
  get(key: string): Promise<string | undefined>
  set(key: string, value: string): Promise<void>
  delete(key: string): Promise<void>
  /** Every key that starts with `prefix`, in any order. */
  keys(prefix: string): Promise<string[]>
}

/**
 * The part of the Web Locks API (`navigator.locks`) the client uses so that two tabs sharing one
 * storage never both send the same stored command: a client holds a lock named after itself for
 * as long as it lives, and takes over another owner's commands only when it can take its lock.
 */
export interface LockManagerLike {
  request(name: string, options: { ifAvailable?: boolean; signal?: AbortSignal }, callback: (lock: unknown) => unknown): Promise<unknown>
}

/**
 * Locks within one JavaScript realm, for runtimes without `navigator.locks` (Node 20): clients of
 * one process still coordinate. Processes do not: `fileStorage` refuses a directory another live
 * process uses instead.
 */
class LocalLocks implements LockManagerLike {
  readonly #queues = new Map<string, Array<() => void>>()

  async request(name: string, options: { ifAvailable?: boolean; signal?: AbortSignal }, callback: (lock: unknown) => unknown): Promise<unknown> {
    const queue = this.#queues.get(name)
    if (queue !== undefined) {
      if (options.ifAvailable === true) return callback(null)
      await new Promise<void>((resolve, reject) => {
        const signal = options.signal
        const granted = (): void => {
          signal?.removeEventListener('abort', aborted)
          resolve()
        }
        const aborted = (): void => {
          const i = queue.indexOf(granted)
          if (i !== -1) queue.splice(i, 1)
          reject(signal?.reason)
        }
        signal?.addEventListener('abort', aborted, { once: true })
        queue.push(granted)
      })
    } else this.#queues.set(name, [])
    try {
      return await callback({ name })
    } finally {
      // Hand the lock straight to the next waiter, so nobody can slip in between.
      const next = this.#queues.get(name)?.shift()
      if (next !== undefined) next()
      else this.#queues.delete(name)
    }
  }
}

let localLocks: LocalLocks | undefined

/** `navigator.locks` where the runtime has it (browsers in a secure context, Node 24), else locks within this realm. */
export function defaultLocks(): LockManagerLike {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator
  if (typeof nav?.locks?.request === 'function') return nav.locks
  return (localLocks ??= new LocalLocks())
}
