import { HoldfastError } from '@holdfast/protocol'

/** Longest channel name accepted. */
export const MAX_CHANNEL_LENGTH = 255

// Letters, digits and a few separators: `:` splits the namespace, `#` the user list, `,` users.
const CHANNEL_RE = /^[A-Za-z0-9_.:@#,=$/-]+$/

export interface ChannelName {
  /** The namespace (`chat` in `chat:lobby`), or '' for none. */
  namespace: string
  /** Users allowed on a user-limited channel (`dialog#42,43` → ['42','43']), or undefined. */
  users: string[] | undefined
}

/**
 * Parse and validate a channel name. Throws `unknown_channel` for an invalid name.
 * `ns:rest` selects namespace `ns`; `rest#u1,u2` limits the channel to users u1 and u2.
 */
export function parseChannel(channel: string): ChannelName {
  if (channel.length === 0 || channel.length > MAX_CHANNEL_LENGTH || !CHANNEL_RE.test(channel)) {
    throw new HoldfastError('unknown_channel', `invalid channel name (1-${MAX_CHANNEL_LENGTH} characters of [A-Za-z0-9_.:@#,=$/-])`)
  }
  const colon = channel.indexOf(':')
  const namespace = colon > 0 ? channel.slice(0, colon) : ''
  const hash = channel.indexOf('#')
  const users = hash === -1 ? undefined : channel.slice(hash + 1).split(',').filter((u) => u.length > 0)
  if (users !== undefined && users.length === 0) throw new HoldfastError('unknown_channel', 'user-limited channel without users')
  return { namespace, users }
}

/** A user-limited channel (`dialog#42,43`) refuses every user it does not name. */
export function checkChannelUser(name: ChannelName, user: string): void {
  if (name.users !== undefined && !name.users.includes(user)) throw new HoldfastError('permission_denied', 'channel is limited to other users')
}
