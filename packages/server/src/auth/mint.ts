import { SignJWT } from 'jose'

export interface MintTokenOptions {
  /** Shared secret, the same as the server's `jwt.secret`. */
  secret: string | Uint8Array
  /** User id (`sub`); the empty string makes an anonymous-by-token user. */
  sub: string
  /** Lifetime: seconds, or a duration such as `'90s'`, `'30m'`, `'1h'`, `'7d'`. @default '1h' */
  ttl?: string | number
  /** Public info shown in presence and join/leave (`info` claim). */
  info?: unknown
  /** Channels the server subscribes the connection to at connect (`channels` claim). */
  channels?: string[]
}

const DEFAULTS = { ttl: '1h' } as const

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }
const TTL_RE = /^(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?|w|weeks?)?$/i

/** TTL in whole seconds. Own parser rather than jose's, which also accepts past offsets ('1h ago'). */
function ttlSeconds(ttl: string | number): number {
  let seconds: number | undefined
  if (typeof ttl === 'number') {
    seconds = ttl
  } else if (typeof ttl === 'string') {
    const m = TTL_RE.exec(ttl.trim())
    if (m !== null) seconds = Number(m[1]) * (UNIT_SECONDS[(m[2] ?? 's')[0]!.toLowerCase()] ?? Number.NaN)
  }
  if (seconds === undefined || !Number.isFinite(seconds) || Math.round(seconds) < 1) {
    throw new TypeError(`holdfast: mintToken option "ttl" must be a positive number of seconds or a duration like "30m" or "1h", got ${String(ttl)}`)
  }
  return Math.round(seconds)
}

/** Sign an HS256 connection token (for `holdfast token`, tests and simple backends). */
export async function mintToken(opts: MintTokenOptions): Promise<string> {
  const { secret, sub, info, channels } = opts
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  if (!(key instanceof Uint8Array) || key.byteLength === 0) throw new TypeError('holdfast: mintToken option "secret" must be a non-empty string or Uint8Array')
  if (typeof sub !== 'string') throw new TypeError('holdfast: mintToken option "sub" must be a string')
  if (channels !== undefined && (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string'))) {
    throw new TypeError('holdfast: mintToken option "channels" must be an array of strings')
  }
  const ttl = ttlSeconds(opts.ttl ?? DEFAULTS.ttl)
  const claims: Record<string, unknown> = {}
  if (info !== undefined) claims['info'] = info
  if (channels !== undefined) claims['channels'] = [...channels]
  const iat = Math.floor(Date.now() / 1000)
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt(iat)
    // A number here is an absolute time for jose, not a duration.
    .setExpirationTime(iat + ttl)
    .sign(key)
}
