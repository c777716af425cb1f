import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto'
import { randomBase64url } from './random-id.js'

/** A resume token's issue time goes in the clear, to the second, in base 36. */
const TIME_RADIX = 36

/**
 * Session resume tokens: `<issued-at>.<hmac>`, an HMAC over the session id, its user and the time
 * it was issued, so any node holding the same `sessionSecret` can verify a resume without shared
 * storage, a session cannot be resumed (taken over) by another user, and a token stops working
 * `maxAgeMs` after it was issued. Every connect hands out a fresh token for the session, so a
 * client that keeps connecting keeps its session; a token that leaked ages out.
 */
export class SessionSigner {
  /** Imported once: an HMAC keyed by a string imports the key again on every call. */
  readonly #secret: KeyObject
  readonly #maxAgeMs: number
  readonly #now: () => number

  constructor(secret: string, maxAgeMs: number, now: () => number = Date.now) {
    this.#secret = createSecretKey(Buffer.from(secret, 'utf8'))
    this.#maxAgeMs = maxAgeMs
    this.#now = now
  }

  /** A new session for `user`. */
  issue(user: string): { id: string; token: string } {
    const id = randomBase64url(12)
    return { id, token: this.sign(id, user) }
  }

  /** A token for session `id` of `user`, issued now. */
  sign(id: string, user: string): string {
    const issued = Math.floor(this.#now() / 1000).toString(TIME_RADIX)
    return `${issued}.${this.#mac(id, user, issued)}`
  }

  /** true when `token` was issued for session `id` of `user` by a holder of the secret, and has not aged out. */
  verify(id: string, user: string, token: string): boolean {
    if (id.length === 0 || id.length > 64 || token.length > 128) return false
    const dot = token.indexOf('.')
    if (dot <= 0 || dot > 12) return false
    const issued = token.slice(0, dot)
    const issuedMs = Number.parseInt(issued, TIME_RADIX) * 1000
    if (!/^[0-9a-z]+$/.test(issued) || !Number.isSafeInteger(issuedMs)) return false
    const age = this.#now() - issuedMs
    // A token from the future (beyond a minute of clock skew between nodes) is not one we issued.
    if (age > this.#maxAgeMs || age < -60_000) return false
    const expected = Buffer.from(this.#mac(id, user, issued))
    const got = Buffer.from(token.slice(dot + 1))
    return got.length === expected.length && timingSafeEqual(got, expected)
  }

  #mac(id: string, user: string, issued: string): string {
    return createHmac('sha256', this.#secret).update(id).update('\0').update(user).update('\0').update(issued).digest('base64url')
  }
}
