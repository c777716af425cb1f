import { createPublicKey, type KeyObject } from 'node:crypto'
import { HoldfastError } from '@holdfast/protocol'
import {
  createRemoteJWKSet,
  errors,
  importSPKI,
  jwtVerify,
  type CryptoKey,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose'
import type { AuthResult, JwtAuthOptions } from './types.js'

const DEFAULTS = {
  clockToleranceSec: 5,
  /** A JWKS endpoint that hangs must not hold a handshake open for long. */
  jwksTimeoutMs: 5_000,
  /**
   * Least time between two JWKS fetches triggered by an unknown `kid`, so that tokens with random
   * kids cannot make us hammer the identity provider. A key published less than this after the
   * previous fetch is picked up once the cooldown has passed.
   */
  jwksCooldownMs: 30_000,
} as const

const HMAC_ALGS = ['HS256', 'HS384', 'HS512'] as const
const RSA_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const
const EC_ALG_BY_CURVE: Readonly<Record<string, string>> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }
/** jose accepts both the old and the fully specified name for Ed25519 signatures. */
const ED25519_ALGS = ['EdDSA', 'Ed25519'] as const
const ASYMMETRIC_ALGS: readonly string[] = [...RSA_ALGS, 'ES256', 'ES384', 'ES512', ...ED25519_ALGS]
/** jose refuses smaller RSA keys at verification time; refusing them at startup is kinder. */
const MIN_RSA_BITS = 2048

type KeySource =
  | { kind: 'secret'; key: Uint8Array<ArrayBuffer> }
  | { kind: 'publicKey'; pem: string }
  | { kind: 'jwks'; url: URL }

interface ResolvedJwtOptions {
  source: KeySource
  verifyOptions: JWTVerifyOptions
}

function optionError(name: string, message: string, cause?: unknown): TypeError {
  return new TypeError(`holdfast: option "jwt.${name}" ${message}`, cause === undefined ? undefined : { cause })
}

function resolveSource(opts: JwtAuthOptions): { source: KeySource; family: readonly string[] } {
  const given = (['secret', 'publicKey', 'jwksUrl'] as const).filter((name) => opts[name] !== undefined)
  if (given.length === 0) {
    throw new TypeError('holdfast: option "jwt" needs one of "jwt.secret", "jwt.publicKey" or "jwt.jwksUrl"')
  }
  if (given.length > 1) {
    throw new TypeError(`holdfast: options ${given.map((n) => `"jwt.${n}"`).join(' and ')} are exclusive; give only one`)
  }
  if (opts.secret !== undefined) {
    const { secret } = opts
    const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret instanceof Uint8Array ? secret : undefined
    if (key === undefined || key.byteLength === 0) throw optionError('secret', 'must be a non-empty string or Uint8Array')
    // A copy, so that the caller reusing its buffer cannot change the key under us.
    return { source: { kind: 'secret', key: Uint8Array.from(key) }, family: HMAC_ALGS }
  }
  if (opts.publicKey !== undefined) {
    return { source: { kind: 'publicKey', pem: opts.publicKey }, family: publicKeyFamily(opts.publicKey) }
  }
  let url: URL
  try {
    url = new URL(String(opts.jwksUrl))
  } catch (cause) {
    throw optionError('jwksUrl', 'must be an absolute http(s) URL', cause)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw optionError('jwksUrl', 'must be an http(s) URL')
  return { source: { kind: 'jwks', url }, family: ASYMMETRIC_ALGS }
}

/** The algorithms a PEM public key can verify, read from the key itself. */
function publicKeyFamily(pem: unknown): readonly string[] {
  // importSPKI accepts only SPKI; checking here turns a wrong PEM (certificate, PKCS#1, private key)
  // into a startup error instead of every handshake failing.
  if (typeof pem !== 'string' || !/^\s*-----BEGIN PUBLIC KEY-----/.test(pem)) {
    throw optionError('publicKey', 'must be a PEM-encoded SPKI public key ("-----BEGIN PUBLIC KEY-----")')
  }
  let key: KeyObject
  try {
    key = createPublicKey({ key: pem, format: 'pem' })
  } catch (cause) {
    throw optionError('publicKey', 'could not be parsed as a PEM public key', cause)
  }
  const details = key.asymmetricKeyDetails
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = details?.modulusLength ?? 0
      if (bits < MIN_RSA_BITS) throw optionError('publicKey', `is a ${bits}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`)
      return RSA_ALGS
    }
    case 'ec': {
      const alg = details?.namedCurve === undefined ? undefined : EC_ALG_BY_CURVE[details.namedCurve]
      if (alg === undefined) throw optionError('publicKey', `uses the unsupported curve ${String(details?.namedCurve)} (use P-256, P-384 or P-521)`)
      return [alg]
    }
    case 'ed25519':
      return ED25519_ALGS
    default:
      throw optionError('publicKey', `is a ${String(key.asymmetricKeyType)} key; use RSA, EC (P-256/P-384/P-521) or Ed25519`)
  }
}

function stringOrList(name: string, v: unknown): string | string[] {
  if (typeof v === 'string' && v.length > 0) return v
  if (Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s.length > 0)) return [...(v as string[])]
  throw optionError(name, 'must be a non-empty string or a non-empty array of non-empty strings')
}

/** Merge with DEFAULTS and validate once; a bad option throws a TypeError naming it. */
function resolveJwtOptions(opts: JwtAuthOptions): ResolvedJwtOptions {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('holdfast: option "jwt" must be an object')
  const { source, family } = resolveSource(opts)
  let algorithms: string[]
  if (opts.algorithms === undefined) {
    algorithms = [...family]
  } else {
    if (!Array.isArray(opts.algorithms) || opts.algorithms.length === 0 || !opts.algorithms.every((a) => typeof a === 'string')) {
      throw optionError('algorithms', 'must be a non-empty array of algorithm names')
    }
    for (const alg of opts.algorithms) {
      if (alg.toLowerCase() === 'none') throw optionError('algorithms', 'must not contain "none": unsigned tokens are never accepted')
      // Refusing, say, HS256 next to an RSA public key is what closes the door on alg-confusion attacks.
      if (!family.includes(alg)) throw optionError('algorithms', `contains "${alg}", which the configured key cannot verify (it can: ${family.join(', ')})`)
    }
    algorithms = [...new Set(opts.algorithms)]
  }
  const clockToleranceSec = opts.clockToleranceSec ?? DEFAULTS.clockToleranceSec
  if (typeof clockToleranceSec !== 'number' || !Number.isFinite(clockToleranceSec) || clockToleranceSec < 0) {
    throw optionError('clockToleranceSec', `must be a non-negative number of seconds, got ${String(clockToleranceSec)}`)
  }
  const verifyOptions: JWTVerifyOptions = { algorithms, clockTolerance: clockToleranceSec }
  if (opts.audience !== undefined) verifyOptions.audience = stringOrList('audience', opts.audience)
  if (opts.issuer !== undefined) verifyOptions.issuer = stringOrList('issuer', opts.issuer)
  return { source, verifyOptions }
}

/**
 * Any failure here is the identity provider's or the network's, not the token's: flagged so that it
 * can be reported as temporary and told apart from a bad token in logs.
 */
class JwksUnavailable extends Error {
  override readonly name = 'JwksUnavailable'
}

function jwksKeyResolver(url: URL): JWTVerifyGetKey<CryptoKey> {
  const remote = createRemoteJWKSet(url, { timeoutDuration: DEFAULTS.jwksTimeoutMs, cooldownDuration: DEFAULTS.jwksCooldownMs })
  return async (header, token) => {
    try {
      return await remote(header, token)
    } catch (err) {
      // These depend on the token's header, so they are the token's fault; anything else is the fetch.
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported) {
        throw err
      }
      throw new JwksUnavailable(err instanceof errors.JWKSTimeout ? 'JWKS fetch timed out' : 'JWKS could not be fetched', { cause: err })
    }
  }
}

/**
 * A key resolver that imports the configured key once per algorithm actually seen (an RSA key may
 * serve RS256 and PS256; a secret HS256 and HS512) and keeps it for the verifier's lifetime; a
 * failed import is forgotten so that it can be retried. jose imports a raw secret or PEM again on
 * every verification when given one directly: in the handshake profile that import was 3.5% of
 * the server's time under HS256.
 */
function cachedKeyResolver(importFor: (alg: string) => Promise<CryptoKey>): JWTVerifyGetKey<CryptoKey> {
  const imported = new Map<string, Promise<CryptoKey>>()
  return (header) => {
    // jose checks `alg` against `algorithms` before asking for the key, so it is allowed here.
    const alg = header.alg
    let key = imported.get(alg)
    if (key === undefined) {
      key = importFor(alg)
      imported.set(alg, key)
      key.catch(() => imported.delete(alg))
    }
    return key
  }
}

/** HS256 → SHA-256, HS384 → SHA-384, HS512 → SHA-512 (the only algorithms the secret family allows). */
function importHmacSecret(secret: Uint8Array<ArrayBuffer>, alg: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify'])
}

function claimFailureMessage(err: errors.JWTClaimValidationFailed): string {
  if (err.claim === 'nbf' && err.reason === 'check_failed') return 'token is not valid yet (nbf)'
  if (err.reason === 'missing') return `token has no "${err.claim}" claim`
  if (err.reason === 'check_failed') return `token "${err.claim}" claim does not match`
  return `token "${err.claim}" claim is invalid`
}

function toHoldfastError(err: unknown): HoldfastError {
  if (err instanceof HoldfastError) return err
  if (err instanceof errors.JWTExpired) return new HoldfastError('token_expired', 'token expired', { cause: err })
  if (err instanceof JwksUnavailable) return new HoldfastError('unauthorized', err.message, { cause: err.cause, temporary: true })
  let message = 'token is invalid'
  if (err instanceof errors.JOSEAlgNotAllowed) message = 'token algorithm is not allowed'
  else if (err instanceof errors.JWSSignatureVerificationFailed) message = 'token signature is invalid'
  else if (err instanceof errors.JWTClaimValidationFailed) message = claimFailureMessage(err)
  else if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) message = 'token is malformed'
  else if (err instanceof errors.JWKSNoMatchingKey) message = 'no JWKS key matches the token'
  else if (err instanceof errors.JOSENotSupported) message = 'token algorithm is not supported'
  return new HoldfastError('unauthorized', message, { cause: err })
}

function toAuthResult(payload: JWTPayload): AuthResult {
  if (typeof payload.sub !== 'string') {
    throw new HoldfastError('unauthorized', payload.sub === undefined ? 'token has no "sub" claim' : 'token "sub" claim must be a string')
  }
  const result: AuthResult = { user: payload.sub }
  // jose has already checked that `exp`, when present, is a number.
  if (payload.exp !== undefined) result.expiresAt = payload.exp * 1000
  if (payload['info'] !== undefined) result.info = payload['info']
  const channels = payload['channels']
  if (channels !== undefined) {
    if (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string')) {
      throw new HoldfastError('unauthorized', 'token "channels" claim must be an array of strings')
    }
    result.channels = [...(channels as string[])]
  }
  return result
}

/**
 * Build a verifier for connection tokens. Options are validated here, once; the returned function
 * resolves with the identity or rejects with `HoldfastError('token_expired')` for an expired token
 * and `HoldfastError('unauthorized')` for anything else. Error messages never contain the token.
 */
export function createJwtVerifier(opts: JwtAuthOptions): (token: string) => Promise<AuthResult> {
  const { source, verifyOptions } = resolveJwtOptions(opts)
  const secret = source.kind === 'secret' ? source.key : undefined
  const pem = source.kind === 'publicKey' ? source.pem : undefined
  const key: JWTVerifyGetKey =
    secret !== undefined
      ? cachedKeyResolver((alg) => importHmacSecret(secret, alg))
      : pem !== undefined
        ? cachedKeyResolver((alg) => importSPKI(pem, alg))
        : jwksKeyResolver((source as { url: URL }).url)

  async function verifyWithCandidates(token: string, err: errors.JWKSMultipleMatchingKeys): Promise<JWTPayload> {
    // A token without `kid` against a JWKS holding several keys of its type: try each of them.
    let last: unknown = err
    for await (const candidate of err) {
      try {
        return (await jwtVerify(token, candidate, verifyOptions)).payload
      } catch (e) {
        if (!(e instanceof errors.JWSSignatureVerificationFailed)) throw e
        last = e
      }
    }
    throw last
  }

  return async function verifyToken(token: string): Promise<AuthResult> {
    if (typeof token !== 'string' || token.length === 0) throw new HoldfastError('unauthorized', 'token is missing')
    let payload: JWTPayload
    try {
      try {
        payload = (await jwtVerify(token, key, verifyOptions)).payload
      } catch (err) {
        if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err
        payload = await verifyWithCandidates(token, err)
      }
    } catch (err) {
      throw toHoldfastError(err)
    }
    return toAuthResult(payload)
  }
}
