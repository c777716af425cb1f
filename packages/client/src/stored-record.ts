/** The outbox's commands as persisted (persistence.ts writes them, outbox.ts keeps a reference). */

/** A publish or rpc as stored: what is needed to send it again after a reload. */
export interface StoredCommand {
  type: 'publish' | 'rpc'
  channel?: string
  method?: string
  data?: unknown
  msgId: string
}

export interface StoredRecord {
  v: 1
  /** Issue order within its owner. */
  seq: number
  createdAt: number
  /** Absolute deadline (ms since the epoch) of the call. */
  deadline: number
  /** First time it went on the wire (or was about to); undefined while it never left. */
  sentAt?: number
  command: StoredCommand
}
