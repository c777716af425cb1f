import { HoldfastError, type ClientInfo } from '@holdfast/client'
import { useEffect, useState } from 'react'
import { useHoldfastClient } from './context.js'
import { release, retain } from './shared-subscriptions.js'

export interface PresenceView {
  /** Who is subscribed to the channel now, one entry per connection. */
  clients: readonly ClientInfo[]
  /** The first presence answer arrived. */
  ready: boolean
  error: HoldfastError | undefined
}

/**
 * Who is in `channel`: the presence list, read when the subscription is (re)established and kept
 * current with join/leave pushes. The channel's namespace needs `presence` (and `joinLeave` for
 * live updates) on the server. Shares the channel's subscription with `useSubscription`.
 */
export function usePresence(channel: string): PresenceView {
  const client = useHoldfastClient()
  const [view, setView] = useState<PresenceView>({ clients: [], ready: false, error: undefined })

  useEffect(() => {
    let live = true
    const members = new Map<string, ClientInfo>()
    const publish = (): void => setView({ clients: [...members.values()], ready: true, error: undefined })
    const sub = retain(client, channel)
    const refresh = (): void => {
      client.presence(channel).then(
        (r) => {
          if (!live) return
          members.clear()
          for (const info of Object.values(r.clients)) members.set(info.client, info)
          publish()
        },
        (error: unknown) => {
          if (live) setView((v) => ({ ...v, error: error instanceof HoldfastError ? error : new HoldfastError('internal', String(error)) }))
        },
      )
    }
    const offs = [
      sub.on('subscribed', refresh),
      sub.on('join', ({ info }) => {
        members.set(info.client, info)
        publish()
      }),
      sub.on('leave', ({ info }) => {
        members.delete(info.client)
        publish()
      }),
    ]
    if (sub.state === 'subscribed') refresh()
    return () => {
      live = false
      for (const off of offs) off()
      release(client, channel, sub)
    }
  }, [client, channel])

  return view
}
