import type { HoldfastError, PublicationEvent, SubscribedEvent, SubscribeOptions, SubscriptionState } from '@holdfast/client'
import { useEffect, useState } from 'react'
import { useHoldfastClient } from './context.js'
import { release, retain } from './shared-subscriptions.js'

/** A publication whose data is a `T`: as the application says, or as its `schema` checked. */
export type Publication<T> = Omit<PublicationEvent, 'data'> & { data: T }

export interface UseSubscriptionOptions<T = unknown> {
  /** Publications kept in `publications` (the newest). @default 100 */
  keep?: number
  /** false: not subscribed (yet), e.g. until the user picks a channel. @default true */
  enabled?: boolean
  /**
   * A Standard Schema (zod, valibot, arktype...) each publication must pass; `T` is its output. A
   * publication that fails is skipped and shows as `error` (`bad_request`). @default none
   */
  schema?: SubscribeOptions<T>['schema']
}

export interface SubscriptionView<T> {
  status: SubscriptionState
  /** The last `keep` publications, oldest first; each once, in offset order. */
  publications: ReadonlyArray<Publication<T>>
  last: Publication<T> | undefined
  /** The last `subscribed` event: after a reconnect, `wasRecovering && !recovered` means history was lost. */
  subscribed: SubscribedEvent | undefined
  /** The last error of the subscription (refused, for instance). */
  error: HoldfastError | undefined
}

const initial = <T>(status: SubscriptionState): SubscriptionView<T> => ({ status, publications: [], last: undefined, subscribed: undefined, error: undefined })

/**
 * Subscribe to `channel` while the component is mounted. Every component that uses the same
 * channel shares one subscription (one subscribe on the wire, also under StrictMode); the last
 * one to unmount unsubscribes.
 */
export function useSubscription<T = unknown>(channel: string, options: UseSubscriptionOptions<T> = {}): SubscriptionView<T> {
  const client = useHoldfastClient()
  const keep = options.keep ?? 100
  const enabled = options.enabled ?? true
  const schema = options.schema
  const [view, setView] = useState<SubscriptionView<T>>(() => initial<T>('unsubscribed'))

  useEffect(() => {
    if (!enabled) {
      setView(initial<T>('unsubscribed'))
      return undefined
    }
    const sub = retain(client, channel)
    setView(initial<T>(sub.state))
    const offs = [
      sub.on('publication', (p) =>
        setView((v) => {
          const pub = p as Publication<T>
          const publications = v.publications.length >= keep ? [...v.publications.slice(v.publications.length - keep + 1), pub] : [...v.publications, pub]
          return { ...v, publications, last: pub }
        }),
      ),
      sub.on('subscribed', (e) => setView((v) => ({ ...v, status: 'subscribed', subscribed: e, error: undefined }))),
      sub.on('unsubscribed', (e) => setView((v) => ({ ...v, status: 'unsubscribed', error: e.error ?? v.error }))),
      sub.on('error', (error) => setView((v) => ({ ...v, error }))),
      // A dropped connection puts the subscription back to subscribing without an event of its own.
      client.on('state', () => setView((v) => (v.status === sub.state ? v : { ...v, status: sub.state }))),
    ]
    return () => {
      for (const off of offs) off()
      release(client, channel, sub)
    }
  }, [client, channel, enabled, keep])

  // After the subscription effect above: sets the schema of the shared subscription (a schema
  // made anew at each render only sets it again; it does not resubscribe).
  useEffect(() => {
    if (enabled && schema !== undefined) client.subscribe(channel, { schema })
  }, [client, channel, enabled, schema])

  return view
}
