import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * A key for one purpose, derived from the admin secret. Every node and every worker given the
 * same secret derives the same keys, so a session cookie or a feed token issued by one of them is
 * accepted by all, with nothing shared at run time; changing the secret invalidates them all.
 * Separate labels keep a cookie from ever passing as a feed token and the other way round.
 */
export function deriveKey(secret: string, purpose: string): Buffer {
  return createHmac('sha256', secret).update(`holdfast admin ${purpose}`).digest()
}

export function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text, 'utf8').digest()
}

/** Constant-time comparison of two MACs (different lengths are simply unequal). */
export function sameMac(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Compares a submitted secret with the configured one in constant time. Both sides are hashed
 * under a per-process random key first, so the comparison always runs over 32 bytes and leaks
 * neither the secret's length nor how many of its leading characters were right.
 */
export class SecretCheck {
  readonly #key = randomBytes(32)
  readonly #expected: Buffer

  constructor(secret: string) {
    this.#expected = hmac(this.#key, secret)
  }

  matches(given: string): boolean {
    return timingSafeEqual(hmac(this.#key, given), this.#expected)
  }
}
