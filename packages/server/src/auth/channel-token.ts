import { HoldfastError } from '@holdfast/protocol'
import { createClaimsVerifier } from './jwt.js'
import type { JwtAuthOptions } from './types.js'

/** What a valid channel token grants one connection on one channel. */
export interface ChannelGrant {
  /** When the grant ends (ms since the epoch); the node unsubscribes then unless a `sub_refresh` moved it. */
  expiresAt: number
  /** The token's `info` claim: this subscription's info in presence and join/leave. */
  info?: unknown
}

/**
 * Checks channel tokens (JWT with `sub`, `channel`, `exp`, optional `info`) with the node's own
 * key, without asking the application: a token lets its user subscribe to its channel where the
 * namespace rules, `canSubscribe` or the backend proxy would refuse. `exp` is always required.
 */
export function createChannelTokenVerifier(opts: JwtAuthOptions): (token: string, user: string, channel: string) => Promise<ChannelGrant> {
  const verify = createClaimsVerifier({ ...opts, requireExp: true })
  return async (token, user, channel) => {
    const claims = await verify(token)
    if (claims['sub'] !== user) throw new HoldfastError('permission_denied', 'channel token was issued to another user')
    if (claims['channel'] !== channel) throw new HoldfastError('permission_denied', 'channel token is for another channel')
    const grant: ChannelGrant = { expiresAt: (claims['exp'] as number) * 1000 }
    if (claims['info'] !== undefined) grant.info = claims['info']
    return grant
  }
}
