import type { HoldfastError, PublishResult, RestoredCommand } from '@holdfast/client'
import { useCallback, useEffect, useRef, useState } from 'react'
import { useHoldfastClient } from './context.js'

export interface PublishEntry<T> {
  /** Stable key for rendering lists. */
  key: string
  data: T
  /** queued: waiting for the server's ack (offline, in flight, or restored after a reload); acked: stored, `offset` set. */
  status: 'queued' | 'acked' | 'failed'
  offset?: number
  error?: HoldfastError
  /** It was issued before a reload and came back from the client's storage. */
  restored: boolean
}

export interface PublishView<T> {
  /** Publish to the hook's channel; resolves on the server's ack (queued while offline). */
  publish(data: T): Promise<PublishResult>
  /** This component's publishes (and restored ones for the channel), oldest first, with their state. */
  entries: ReadonlyArray<PublishEntry<T>>
  /** Forget the entries that are acked or failed. */
  clear(): void
}

/**
 * Publish to `channel` and follow each publish from queued to acked (or failed). Publishes that a
 * previous page left in the client's `storage` appear too, marked `restored`, and turn acked when
 * the server confirms them. At most `keep` entries are kept; settled ones go first.
 */
export function usePublish<T = unknown>(channel: string, keep = 100): PublishView<T> {
  const client = useHoldfastClient()
  const [entries, setEntries] = useState<ReadonlyArray<PublishEntry<T>>>([])
  const seq = useRef(0)

  const track = useCallback(
    (key: string, data: T, restored: boolean, result: Promise<unknown>) => {
      const update = (patch: Partial<PublishEntry<T>>): void => setEntries((list) => list.map((e) => (e.key === key ? { ...e, ...patch } : e)))
      setEntries((list) => {
        if (list.some((e) => e.key === key)) return list
        const next = [...list, { key, data, status: 'queued' as const, restored }]
        while (next.length > keep) {
          const i = next.findIndex((e) => e.status !== 'queued')
          next.splice(i === -1 ? 0 : i, 1)
        }
        return next
      })
      result.then(
        (r) => update({ status: 'acked', offset: (r as PublishResult).offset }),
        (error: HoldfastError) => update({ status: 'failed', error }),
      )
    },
    [keep],
  )

  useEffect(() => {
    // Keys are message ids, so StrictMode's second run (or a later queue event) adds nothing twice.
    const adopt = (restored: readonly RestoredCommand[]): void => {
      for (const r of restored) if (r.type === 'publish' && r.channel === channel) track(`restored:${r.msgId}`, r.data as T, true, r.result)
    }
    adopt(client.restored)
    return client.on('queue', (e) => {
      if (e.restored !== undefined) adopt(e.restored)
    })
  }, [client, channel, track])

  const publish = useCallback(
    (data: T): Promise<PublishResult> => {
      const result = client.publish(channel, data)
      track(`local:${++seq.current}`, data, false, result)
      return result
    },
    [client, channel, track],
  )

  const clear = useCallback(() => setEntries((list) => list.filter((e) => e.status === 'queued')), [])
  return { publish, entries, clear }
}
