import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'
import { HoldfastError, type AuthResult, type AuthenticateHook, type HoldfastOptions, type JwtAuthOptions } from '@holdfast/server'
import { createJwtVerifier } from '@holdfast/server/internal'
import { ADMIN_NAMESPACE } from './feed.js'
import { deriveKey, hmac, sameMac } from './keys.js'

/** Prefix of a feed capability; nothing else the gateway sees looks like it (JWTs start with `eyJ`). */
const CAPABILITY_PREFIX = 'hfadmin1'
const HS_ALGS = new Set(['HS256', 'HS384', 'HS512'])

/**
 * How the dashboard's WebSocket proves it is the admin:
 * - `jwt`: the gateway verifies HS* tokens with a secret we know, so we mint an ordinary
 *   connection token for the admin user with that secret. The gateway's auth is untouched.
 * - `capability`: anonymous gateways, public-key/JWKS verification, or an application's own
 *   `authenticate` hook. We cannot mint what those accept, so an authenticate hook is put in
 *   front: a token starting with `hfadmin1.` must carry our signature (made with a key derived
 *   from the admin secret) and yields the admin user; every other token, or none, goes to the
 *   gateway's usual path unchanged (the application's hook, the JWT verifier, or anonymous).
 */
export type FeedAuthMode = 'jwt' | 'capability'

export function isAdminChannel(channel: string): boolean {
  return channel.startsWith(`${ADMIN_NAMESPACE}:`)
}

/**
 * The reserved admin user, the tokens that authenticate as it, and the gateway hooks that keep
 * `$admin:` channels to it. The user id is derived from the admin secret: the same on every node,
 * and not guessable by whoever mints the application's own tokens, so no application user can be
 * given the admin's identity by accident or by choosing a clever user name.
 */
export class AdminIdentity {
  readonly user: string
  readonly statsChannel: string
  readonly mode: FeedAuthMode
  /** The gateway options with the admin's hooks added: create the gateway with these. */
  readonly serverOptions: HoldfastOptions
  /** Lifetime of the tokens minted for the page. */
  readonly tokenTtlMs: number
  readonly #capabilityKey: Buffer
  readonly #jwt: (JwtAuthOptions & { secret: string | Uint8Array }) | undefined

  constructor(secret: string, server: HoldfastOptions, tokenTtlMs: number) {
    this.user = `${ADMIN_NAMESPACE}-${deriveKey(secret, 'user').subarray(0, 12).toString('hex')}`
    // User-limited (`#user`): the gateway's own check refuses anyone else's subscribe, history
    // and presence on it even without our hooks; the hooks below close the rest of the namespace.
    this.statsChannel = `${ADMIN_NAMESPACE}:stats#${this.user}`
    this.#capabilityKey = deriveKey(secret, 'feed capability')
    this.tokenTtlMs = tokenTtlMs
    const jwt = server.jwt
    this.#jwt = server.authenticate === undefined && jwt?.secret !== undefined ? { ...jwt, secret: jwt.secret } : undefined
    this.mode = this.#jwt === undefined ? 'capability' : 'jwt'
    this.serverOptions = this.#withHooks(server)
  }

  #withHooks(server: HoldfastOptions): HoldfastOptions {
    const { canSubscribe, canPublish } = server
    const out: HoldfastOptions = {
      ...server,
      canSubscribe: (ctx) => (isAdminChannel(ctx.channel) ? ctx.client.user === this.user : (canSubscribe?.(ctx) ?? true)),
      // Stats come from the nodes only: a client (the admin included) could otherwise feed the
      // dashboard made-up numbers.
      canPublish: (ctx) => (isAdminChannel(ctx.channel) ? false : (canPublish?.(ctx) ?? true)),
    }
    if (this.mode === 'capability') out.authenticate = this.#authenticateHook(server)
    return out
  }

  #authenticateHook(server: HoldfastOptions): AuthenticateHook {
    const own = server.authenticate
    let fallback: AuthenticateHook
    if (own !== undefined) {
      fallback = own
    } else if (server.jwt !== undefined) {
      // Validates the jwt options now (a TypeError naming the bad one), as the gateway would.
      const verify = createJwtVerifier(server.jwt)
      // The gateway lets a JWT run `clockToleranceSec` past its exp only when it verifies the JWT
      // itself; through a hook it would not, so the tolerance is added here to keep that rule.
      const graceMs = (server.jwt.clockToleranceSec ?? 5) * 1000
      fallback = async ({ token }) => {
        if (token === undefined || token === '') throw new HoldfastError('unauthorized', 'a token is required')
        const r = await verify(token)
        return r.expiresAt === undefined ? r : { ...r, expiresAt: r.expiresAt + graceMs }
      }
    } else {
      const anonymous = server.allowAnonymous ?? true
      fallback = () => {
        if (!anonymous) throw new HoldfastError('unauthorized', 'anonymous connections are not allowed')
        return { user: '' }
      }
    }
    return (ctx) => (ctx.token?.startsWith(`${CAPABILITY_PREFIX}.`) === true ? this.verifyCapability(ctx.token) : fallback(ctx))
  }

  /** A connection token for the admin user, valid for the token TTL. */
  async mintToken(now = Date.now()): Promise<string> {
    const exp = Math.floor((now + this.tokenTtlMs) / 1000)
    const jwt = this.#jwt
    if (jwt === undefined) {
      const body = `${CAPABILITY_PREFIX}.${exp}.${randomBytes(9).toString('base64url')}`
      return `${body}.${hmac(this.#capabilityKey, body).toString('base64url')}`
    }
    const key = typeof jwt.secret === 'string' ? new TextEncoder().encode(jwt.secret) : jwt.secret
    const alg = jwt.algorithms?.find((a) => HS_ALGS.has(a)) ?? 'HS256'
    const token = new SignJWT({}).setProtectedHeader({ alg, typ: 'JWT' }).setSubject(this.user).setIssuedAt(Math.floor(now / 1000)).setExpirationTime(exp)
    // A gateway that requires an issuer or an audience checks them on our token too.
    const iss = Array.isArray(jwt.issuer) ? jwt.issuer[0] : jwt.issuer
    if (iss !== undefined) token.setIssuer(iss)
    if (jwt.audience !== undefined) token.setAudience(jwt.audience)
    return token.sign(key)
  }

  /** The admin identity for a valid capability; `unauthorized` / `token_expired` otherwise. */
  verifyCapability(token: string, now = Date.now()): AuthResult {
    const parts = token.split('.')
    const bad = new HoldfastError('unauthorized', 'invalid admin token')
    if (parts.length !== 4 || parts[0] !== CAPABILITY_PREFIX) throw bad
    const [, exp, nonce, mac] = parts as [string, string, string, string]
    if (!/^\d{1,12}$/.test(exp)) throw bad
    if (!sameMac(Buffer.from(mac, 'base64url'), hmac(this.#capabilityKey, `${CAPABILITY_PREFIX}.${exp}.${nonce}`))) throw bad
    const expiresAt = Number(exp) * 1000
    if (expiresAt <= now) throw new HoldfastError('token_expired', 'admin token expired')
    return { user: this.user, expiresAt }
  }
}
