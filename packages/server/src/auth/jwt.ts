import { KeyObject, createPublicKey } from 'node:crypto'
import { HoldfastError } from '@holdfast/protocol'
import { TokenError, createDecoder, createVerifier } from 'fast-jwt'
import { createRemoteJWKSet, errors, type CryptoKey, type JWSHeaderParameters } from 'jose'
import { checkClaims, toAuthResult, type ClaimPolicy } from './jwt-claims.js'
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
  | { kind: 'secret'; key: Buffer; family: readonly string[] }
  | { kind: 'publicKey'; pem: string; family: readonly string[] }
  | { kind: 'jwks'; url: URL }

interface ResolvedJwtOptions {
  source: KeySource
  /** Accepted `alg` values, all within the family of the configured key. */
  algorithms: readonly string[]
  claims: ClaimPolicy
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
    return { source: { kind: 'secret', key: Buffer.from(key), family: HMAC_ALGS }, family: HMAC_ALGS }
  }
  if (opts.publicKey !== undefined) {
    const family = publicKeyFamily(opts.publicKey)
    return { source: { kind: 'publicKey', pem: opts.publicKey, family }, family }
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
  const family = keyFamily(key)
  if (typeof family === 'string') throw optionError('publicKey', family)
  return family
}

/**
 * The algorithms a public key can verify, or why it cannot be used. Shared by the configured PEM
 * (checked at startup) and the JWKS keys (checked the first time each is used): node:crypto, unlike
 * WebCrypto, would verify with a short RSA key or an unexpected curve.
 */
function keyFamily(key: KeyObject): readonly string[] | string {
  const details = key.asymmetricKeyDetails
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = details?.modulusLength ?? 0
      return bits < MIN_RSA_BITS ? `is a ${bits}-bit RSA key; at least ${MIN_RSA_BITS} bits are required` : RSA_ALGS
    }
    case 'ec': {
      const alg = details?.namedCurve === undefined ? undefined : EC_ALG_BY_CURVE[details.namedCurve]
      return alg === undefined ? `uses the unsupported curve ${String(details?.namedCurve)} (use P-256, P-384 or P-521)` : [alg]
    }
    case 'ed25519':
      return ED25519_ALGS
    default:
      return `is a ${String(key.asymmetricKeyType)} key; use RSA, EC (P-256/P-384/P-521) or Ed25519`
  }
}

function stringOrList(name: string, v: unknown): string[] {
  if (typeof v === 'string' && v.length > 0) return [v]
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
  const requireExp = opts.requireExp ?? true
  if (typeof requireExp !== 'boolean') throw optionError('requireExp', `must be a boolean, got ${String(requireExp)}`)
  const claims: ClaimPolicy = { clockToleranceSec, requireExp }
  if (opts.audience !== undefined) claims.audience = stringOrList('audience', opts.audience)
  if (opts.issuer !== undefined) claims.issuer = stringOrList('issuer', opts.issuer)
  return { source, algorithms, claims }
}

/**
 * Any failure here is the identity provider's or the network's, not the token's: flagged so that it
 * can be reported as temporary and told apart from a bad token in logs.
 */
class JwksUnavailable extends Error {
  override readonly name = 'JwksUnavailable'
}

/** A token's header and claims once fast-jwt has checked its form, `alg` and signature. */
interface Verified {
  header: Record<string, unknown>
  payload: Record<string, unknown>
}

/**
 * A synchronous signature check for one key, by fast-jwt on node:crypto (createHmac +
 * timingSafeEqual, crypto.verify with a KeyObject made once). WebCrypto, which jose 6 uses, runs
 * every verification as a job on the libuv threadpool: each handshake then hopped to a pool thread
 * and back, 14–20% of the server's profile under load (docs/benchmarks.md, "Handshakes per core").
 *
 * fast-jwt is given only the allowed algorithms of the key's own family, so it never verifies a
 * token under another family's algorithm (an HS256 token against an RSA key is refused before any
 * MAC is computed). It knows Ed25519 signatures only as "EdDSA", so an Ed25519 key gets both names
 * and the caller checks the header's `alg` against the allowed list itself. Time claims are left to
 * checkClaims.
 */
function signatureVerifier(key: Buffer | string, family: readonly string[], allowed: readonly string[]): (token: string) => Verified {
  const algorithms = allowed.filter((alg) => family.includes(alg))
  // Guard: with no algorithms fast-jwt would accept every algorithm the key can verify.
  if (algorithms.length === 0) throw new HoldfastError('unauthorized', 'token algorithm is not allowed')
  if (algorithms.some((alg) => (ED25519_ALGS as readonly string[]).includes(alg))) algorithms.push(...ED25519_ALGS)
  return createVerifier({
    key,
    algorithms: [...new Set(algorithms)] as Array<'EdDSA'>,
    complete: true,
    ignoreExpiration: true,
    ignoreNotBefore: true,
  }) as (token: string) => Verified
}

function tokenErrorMessage(err: TokenError): string {
  switch (err.code) {
    case TokenError.codes.invalidAlgorithm:
      return 'token algorithm is not allowed'
    case TokenError.codes.invalidSignature:
    case TokenError.codes.verifyError:
      return 'token signature is invalid'
    case TokenError.codes.missingSignature:
      return 'token signature is missing'
    case TokenError.codes.malformed:
    case TokenError.codes.invalidPayload:
    case TokenError.codes.invalidType:
      return 'token is malformed'
    default:
      return 'token is invalid'
  }
}

function toHoldfastError(err: unknown): HoldfastError {
  if (err instanceof HoldfastError) return err
  if (err instanceof JwksUnavailable) return new HoldfastError('unauthorized', err.message, { cause: err.cause, temporary: true })
  let message = 'token is invalid'
  if (err instanceof TokenError) message = tokenErrorMessage(err)
  else if (err instanceof errors.JWKSNoMatchingKey) message = 'no JWKS key matches the token'
  else if (err instanceof errors.JOSENotSupported) message = 'token algorithm is not supported'
  return new HoldfastError('unauthorized', message, { cause: err })
}

/**
 * Keys from a JWKS URL: jose's remote set fetches, caches and refetches them (by `kid`, with a
 * timeout and a cooldown) and picks the key for a token's header; the signature itself is then
 * checked synchronously by a fast-jwt verifier made once per key.
 */
function jwksVerifier(url: URL, allowed: readonly string[]): (token: string) => Promise<Verified> {
  const remote = createRemoteJWKSet(url, { timeoutDuration: DEFAULTS.jwksTimeoutMs, cooldownDuration: DEFAULTS.jwksCooldownMs })
  const decode = createDecoder({ complete: true }) as (token: string) => Verified
  // jose keeps the CryptoKey it imported for a JWK until the set is refetched, so this holds one
  // verifier per key in use and lets rotated-out keys go.
  const verifiers = new WeakMap<CryptoKey, (token: string) => Verified>()

  function verifierFor(cryptoKey: CryptoKey): (token: string) => Verified {
    let verifier = verifiers.get(cryptoKey)
    if (verifier === undefined) {
      const key = KeyObject.from(cryptoKey)
      const family = keyFamily(key)
      if (typeof family === 'string') throw new HoldfastError('unauthorized', 'token is invalid', { cause: new Error(`the JWKS key ${family}`) })
      verifier = signatureVerifier(key.export({ type: 'spki', format: 'pem' }) as string, family, allowed)
      verifiers.set(cryptoKey, verifier)
    }
    return verifier
  }

  async function keyFor(header: Record<string, unknown>): Promise<CryptoKey | errors.JWKSMultipleMatchingKeys> {
    try {
      return await remote(header as JWSHeaderParameters)
    } catch (err) {
      // A token without `kid` against a JWKS holding several keys of its type: its candidates are tried.
      if (err instanceof errors.JWKSMultipleMatchingKeys) return err
      // These depend on the token's header, so they are the token's fault; anything else is the fetch.
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JOSENotSupported) throw err
      throw new JwksUnavailable(err instanceof errors.JWKSTimeout ? 'JWKS fetch timed out' : 'JWKS could not be fetched', { cause: err })
    }
  }

  return async (token) => {
    const { header } = decode(token)
    // Checked before the key is looked up, so that no token can make us fetch the JWKS for an alg we refuse anyway.
    if (!allowed.includes(header['alg'] as string)) throw new TokenError(TokenError.codes.invalidAlgorithm, 'The token algorithm is invalid.')
    const key = await keyFor(header)
    if (!(key instanceof errors.JWKSMultipleMatchingKeys)) return verifierFor(key)(token)
    let last: unknown = key
    for await (const candidate of key) {
      try {
        return verifierFor(candidate)(token)
      } catch (err) {
        if (!(err instanceof TokenError && err.code === TokenError.codes.invalidSignature)) throw err
        last = err
      }
    }
    throw last
  }
}

/**
 * Build a verifier for connection tokens. Options are validated here, once; the returned function
 * resolves with the identity or rejects with `HoldfastError('token_expired')` for an expired token
 * and `HoldfastError('unauthorized')` for anything else. Error messages never contain the token.
 * With a secret or a PEM key the whole check is synchronous (see signatureVerifier); with a JWKS
 * only the key lookup may wait, for a fetch.
 */
export function createJwtVerifier(opts: JwtAuthOptions): (token: string) => Promise<AuthResult> {
  const verify = createClaimsVerifier(opts)
  return async (token) => toAuthResult(await verify(token))
}

/** A token's payload once its signature, algorithm and registered claims passed (connection and channel tokens). */
export function createClaimsVerifier(opts: JwtAuthOptions): (token: string) => Promise<Record<string, unknown>> {
  const { source, algorithms, claims } = resolveJwtOptions(opts)
  const verifySignature: (token: string) => Verified | Promise<Verified> =
    source.kind === 'jwks'
      ? jwksVerifier(source.url, algorithms)
      : signatureVerifier(source.kind === 'secret' ? source.key : source.pem, source.family, algorithms)

  return async function verifyToken(token: string): Promise<Record<string, unknown>> {
    if (typeof token !== 'string' || token.length === 0) throw new HoldfastError('unauthorized', 'token is missing')
    try {
      const { header, payload } = await verifySignature(token)
      if (!algorithms.includes(header['alg'] as string)) throw new HoldfastError('unauthorized', 'token algorithm is not allowed')
      checkClaims(payload, claims)
      return payload
    } catch (err) {
      throw toHoldfastError(err)
    }
  }
}
