import { HoldfastError } from '@holdfast/protocol'
import type { AuthResult } from './types.js'

/** What a verified token's claims are checked against; built once from the options. */
export interface ClaimPolicy {
  clockToleranceSec: number
  /** A token without `exp` is refused. */
  requireExp: boolean
  audience?: readonly string[]
  issuer?: readonly string[]
}

const unauthorized = (message: string): HoldfastError => new HoldfastError('unauthorized', message)

function numericDate(payload: Record<string, unknown>, claim: 'iat' | 'nbf' | 'exp'): number | undefined {
  const value = payload[claim]
  if (value === undefined) return undefined
  if (typeof value !== 'number') throw unauthorized(`token "${claim}" claim is invalid`)
  return value
}

/**
 * Checks the registered claims of a token whose signature has been verified, in the order jose
 * checked them before and with the same outcomes: presence of `iss` then `aud`, their values,
 * then `iat`, `nbf` and `exp` as numeric dates with the clock tolerance (`exp` required unless
 * the policy allows tokens without it) (expired when
 * `exp <= now - tolerance`, in whole seconds). Written here rather than left to fast-jwt, whose
 * claim errors name the failing claim only inside an English sentence and which checks expiry
 * before audience and issuer: an expired token for another audience must stay `unauthorized`,
 * not `token_expired` (refreshing it would not help).
 */
export function checkClaims(payload: Record<string, unknown>, policy: ClaimPolicy): void {
  for (const claim of ['iss', 'aud'] as const) {
    if ((claim === 'iss' ? policy.issuer : policy.audience) !== undefined && !Object.hasOwn(payload, claim)) {
      throw unauthorized(`token has no "${claim}" claim`)
    }
  }
  if (policy.issuer !== undefined && !policy.issuer.includes(payload['iss'] as string)) throw unauthorized('token "iss" claim does not match')
  if (policy.audience !== undefined) {
    const aud = payload['aud']
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : []
    if (!policy.audience.some((a) => audiences.includes(a))) throw unauthorized('token "aud" claim does not match')
  }
  const now = Math.floor(Date.now() / 1000)
  const tolerance = policy.clockToleranceSec
  numericDate(payload, 'iat')
  const nbf = numericDate(payload, 'nbf')
  if (nbf !== undefined && nbf > now + tolerance) throw unauthorized('token is not valid yet (nbf)')
  const exp = numericDate(payload, 'exp')
  if (exp === undefined && policy.requireExp) throw unauthorized('token has no "exp" claim')
  if (exp !== undefined && exp <= now - tolerance) throw new HoldfastError('token_expired', 'token expired')
}

/** The identity a verified token carries; its claims must already have passed `checkClaims`. */
export function toAuthResult(payload: Record<string, unknown>): AuthResult {
  const sub = payload['sub']
  if (typeof sub !== 'string') throw unauthorized(sub === undefined ? 'token has no "sub" claim' : 'token "sub" claim must be a string')
  const result: AuthResult = { user: sub }
  // checkClaims has already made sure that `exp`, when present, is a number.
  if (payload['exp'] !== undefined) result.expiresAt = (payload['exp'] as number) * 1000
  if (payload['info'] !== undefined) result.info = payload['info']
  const channels = payload['channels']
  if (channels !== undefined) {
    if (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string')) {
      throw unauthorized('token "channels" claim must be an array of strings')
    }
    result.channels = [...(channels as string[])]
  }
  return result
}
