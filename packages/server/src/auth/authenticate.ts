import { HoldfastError } from '@holdfast/protocol'
import type { ResolvedOptions } from '../options.js'
import type { UpgradeRequest } from '../transport/transport.js'
import { createJwtVerifier } from './jwt.js'
import type { AuthResult } from './types.js'

export interface Authenticator {
  /** Verify a token with the `authenticate` hook, else the JWT verifier, else allow anonymous users if configured. */
  authenticate(token: string | undefined, req: UpgradeRequest | undefined): Promise<AuthResult>
  /** Clock skew allowed past a token's `exp`: the JWT verifier's tolerance; an authenticate hook's expiry is taken as is. */
  readonly expiryGraceMs: number
}

export function createAuthenticator(o: ResolvedOptions): Authenticator {
  const hook = o.authenticate
  if (hook !== undefined) {
    return { expiryGraceMs: 0, authenticate: async (token, req) => hook(req === undefined ? { token } : { token, request: req }) }
  }
  if (o.jwt !== undefined) {
    const verify = createJwtVerifier(o.jwt)
    return {
      expiryGraceMs: (o.jwt.clockToleranceSec ?? 5) * 1000,
      authenticate: async (token) => {
        if (token === undefined || token === '') throw new HoldfastError('unauthorized', 'a token is required')
        return verify(token)
      },
    }
  }
  return {
    expiryGraceMs: 0,
    authenticate: async () => {
      if (!o.allowAnonymous) throw new HoldfastError('unauthorized', 'anonymous connections are not allowed')
      return { user: '' }
    },
  }
}
