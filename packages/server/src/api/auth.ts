import { createHash, timingSafeEqual } from 'node:crypto'

export type ApiKeyVerdict = 'ok' | 'missing' | 'invalid'

/** The scheme of `Authorization: apikey <key>`, matched case-insensitively like other auth schemes. */
const HEADER_RE = /^apikey[ \t]+(\S+)[ \t]*$/i

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

/**
 * Reject a key that cannot work, at registration time: an empty key or one with whitespace
 * could never be sent in the header, and an API that nobody can call hides a configuration bug.
 */
export function assertApiKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new TypeError('holdfast api: the "apiKey" option is required (a non-empty string); an unauthenticated server API is never served')
  }
  if (/\s/.test(key)) throw new TypeError('holdfast api: the "apiKey" option must not contain whitespace')
}

/**
 * A checker for the Authorization header. Both sides are hashed before the comparison, so that
 * `timingSafeEqual` compares equal lengths and the time taken says nothing about the key, not
 * even its length.
 */
export function createApiKeyCheck(key: string): (header: string | undefined) => ApiKeyVerdict {
  assertApiKey(key)
  const expected = digest(key)
  return (header) => {
    if (header === undefined || header === '') return 'missing'
    const m = HEADER_RE.exec(header)
    // Compare even when the scheme is wrong, so that both paths cost the same.
    const given = digest(m?.[1] ?? '')
    return timingSafeEqual(given, expected) && m !== null ? 'ok' : 'invalid'
  }
}
