import type { HoldfastClient, Subscription } from '@holdfast/client'

interface Held {
  sub: Subscription
  refs: number
  /** The hooks created it: they unsubscribe it when the last one lets go. */
  owned: boolean
  release: ReturnType<typeof setTimeout> | undefined
}

const byClient = new WeakMap<HoldfastClient, Map<string, Held>>()

/**
 * One subscription per channel for every hook of a client, counted. React's StrictMode mounts,
 * unmounts and mounts again every effect in development; letting go is deferred by a macrotask,
 * and a hook that takes the channel again meanwhile cancels it, so the server sees one subscribe,
 * not subscribe-unsubscribe-subscribe.
 */
export function retain(client: HoldfastClient, channel: string): Subscription {
  let held = byClient.get(client)
  if (held === undefined) byClient.set(client, (held = new Map()))
  let h = held.get(channel)
  // The server ended it (kicked, refused): take a fresh one.
  if (h !== undefined && h.sub.state === 'unsubscribed') {
    clearTimeout(h.release)
    held.delete(channel)
    h = undefined
  }
  if (h === undefined) {
    const owned = client.getSubscription(channel) === undefined
    h = { sub: client.subscribe(channel), refs: 0, owned, release: undefined }
    held.set(channel, h)
  }
  h.refs++
  clearTimeout(h.release)
  h.release = undefined
  return h.sub
}

/** The hook is done with the channel; the last one out unsubscribes (unless the app made the subscription). */
export function release(client: HoldfastClient, channel: string, sub: Subscription): void {
  const held = byClient.get(client)
  const h = held?.get(channel)
  if (held === undefined || h === undefined || h.sub !== sub) return
  h.refs--
  if (h.refs > 0) return
  h.release = setTimeout(() => {
    if (h.refs > 0 || held.get(channel) !== h) return
    held.delete(channel)
    if (h.owned) h.sub.unsubscribe()
  }, 0)
}
