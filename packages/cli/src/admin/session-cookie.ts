import { randomBytes } from 'node:crypto'
import type { CookieSerializeOptions } from '@fastify/cookie'
import { hmac, sameMac } from './keys.js'

/** The dashboard's session cookie. Its Path keeps it off every request outside /admin. */
export const SESSION_COOKIE = 'holdfast_admin'
export const COOKIE_PATH = '/admin'
const VERSION = 'v1'

export interface Session {
  id: string
  /** ms since the epoch */
  expiresAt: number
}

/**
 * Why not @fastify/secure-session: it encrypts a payload (we have none besides an id and an
 * expiry), needs the native sodium-native addon, and cannot revoke a cookie at logout. Parsing and
 * writing the cookie is @fastify/cookie's job (routes.ts); what it holds and proves is this class's.
 *
 * Stateless, HMAC-signed session cookies: `v1.<expiry in s>.<random id>.<mac>`. Nothing is stored
 * per session, so any node holding the same admin secret accepts them; the expiry is inside the
 * signed text, so it cannot be stretched. Logout forgets the id on this process (a stolen copy
 * stays valid elsewhere until it expires, which is why the lifetime is hours, not weeks).
 */
export class SessionCookies {
  readonly #key: Buffer
  readonly #ttlMs: number
  readonly #now: () => number
  /** Logged-out session ids → their expiry, dropped once expired. */
  readonly #revoked = new Map<string, number>()

  constructor(key: Buffer, ttlMs: number, now: () => number = Date.now) {
    this.#key = key
    this.#ttlMs = ttlMs
    this.#now = now
  }

  get ttlMs(): number {
    return this.#ttlMs
  }

  /** A new session and its cookie value. */
  issue(): { session: Session; value: string } {
    const id = randomBytes(16).toString('base64url')
    // Whole seconds: the value stays short and the Max-Age attribute says the same thing.
    const expiresAt = Math.floor((this.#now() + this.#ttlMs) / 1000) * 1000
    const body = `${VERSION}.${expiresAt / 1000}.${id}`
    return { session: { id, expiresAt }, value: `${body}.${hmac(this.#key, body).toString('base64url')}` }
  }

  /** The session a cookie value proves, or undefined when it is forged, malformed, expired or logged out. */
  verify(value: string | undefined): Session | undefined {
    if (value === undefined || value.length > 200) return undefined
    const parts = value.split('.')
    if (parts.length !== 4 || parts[0] !== VERSION) return undefined
    const [, exp, id, mac] = parts as [string, string, string, string]
    if (!/^\d{1,12}$/.test(exp) || !/^[A-Za-z0-9_-]{22}$/.test(id)) return undefined
    if (!sameMac(Buffer.from(mac, 'base64url'), hmac(this.#key, `${VERSION}.${exp}.${id}`))) return undefined
    const expiresAt = Number(exp) * 1000
    if (expiresAt <= this.#now() || this.#revoked.has(id)) return undefined
    return { id, expiresAt }
  }

  revoke(session: Session): void {
    const now = this.#now()
    for (const [id, exp] of this.#revoked) if (exp <= now) this.#revoked.delete(id)
    this.#revoked.set(session.id, session.expiresAt)
  }
}

/**
 * Attributes of the session cookie (parsed and written by @fastify/cookie). HttpOnly: page scripts
 * (and so an injected one) never see it. SameSite=Strict: no cross-site request carries it, the
 * first line of CSRF defence. Secure when the page was reached over HTTPS (directly or through a
 * proxy that says so): over plain HTTP on a development machine a Secure cookie would never come
 * back. `maxAge` 0 clears it.
 */
export function sessionCookieOptions(maxAgeSec: number, secure: boolean): CookieSerializeOptions {
  return { path: COOKIE_PATH, maxAge: maxAgeSec, httpOnly: true, sameSite: 'strict', secure }
}
