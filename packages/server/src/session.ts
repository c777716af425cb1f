import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto'
import { randomBase64url } from './random-id.js'

/**
 * Session resume tokens: an HMAC over the session id and its user, so any node holding the same
 * `sessionSecret` can verify a resume without shared storage, and a session cannot be resumed
 * (taken over) by another user.
 */
export class SessionSigner {
  /** Imported once: an HMAC keyed by a string imports the key again on every call. */
  readonly #secret: KeyObject
  constructor(secret: string) {
    this.#secret = createSecretKey(Buffer.from(secret, 'utf8'))
  }

  issue(user: string): { id: string; token: string } {
    const id = randomBase64url(12)
    return { id, token: this.sign(id, user) }
  }

  sign(id: string, user: string): string {
    return createHmac('sha256', this.#secret).update(id).update('\0').update(user).digest('base64url')
  }

  verify(id: string, user: string, token: string): boolean {
    if (id.length === 0 || id.length > 64 || token.length > 128) return false
    const expected = Buffer.from(this.sign(id, user))
    const got = Buffer.from(token)
    return got.length === expected.length && timingSafeEqual(got, expected)
  }
}
