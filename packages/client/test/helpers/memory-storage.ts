import type { ClientStorage } from '../../src/storage.js'

/** A ClientStorage in a Map, with switches to make its operations fail or stall, for tests. */
export class MemoryStorage implements ClientStorage {
  readonly data = new Map<string, string>()
  /** Operations that reject with this error while set. */
  failing: { set?: Error; delete?: Error; keys?: Error } = {}
  /** Deletes that are silently skipped (a process that died before it could delete). */
  skipDeletes = false

  async get(key: string): Promise<string | undefined> {
    return this.data.get(key)
  }

  async set(key: string, value: string): Promise<void> {
    if (this.failing.set !== undefined) throw this.failing.set
    this.data.set(key, value)
  }

  async delete(key: string): Promise<void> {
    if (this.failing.delete !== undefined) throw this.failing.delete
    if (!this.skipDeletes) this.data.delete(key)
  }

  async keys(prefix: string): Promise<string[]> {
    if (this.failing.keys !== undefined) throw this.failing.keys
    return [...this.data.keys()].filter((k) => k.startsWith(prefix))
  }

  /** Stored commands (outbox records), parsed. */
  commands(): Array<{ key: string; record: { seq: number; sentAt?: number; command: { msgId: string; data?: unknown } } }> {
    return [...this.data.entries()].filter(([k]) => k.startsWith('holdfast:o:')).map(([key, v]) => ({ key, record: JSON.parse(v) }))
  }
}
