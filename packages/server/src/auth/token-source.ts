import type { UpgradeRequest } from '../transport/transport.js'

/** RFC 6750 allows one space after the scheme; tolerating more costs nothing. The scheme is case-insensitive (RFC 9110). */
const BEARER_RE = /^Bearer[ \t]+(\S+)[ \t]*$/i

/**
 * The connection token carried by the upgrade request: `Authorization: Bearer <token>`, else the
 * `token` query parameter (browsers cannot set headers on a WebSocket). Cookies are deliberately not
 * read: browsers attach them to cross-site upgrades too, which is how WebSocket hijacking works.
 */
export function tokenFromRequest(req: Pick<UpgradeRequest, 'headers' | 'url'>): string | undefined {
  const header = req.headers.authorization
  if (typeof header === 'string') {
    const m = BEARER_RE.exec(header)
    if (m !== null) return m[1]
  }
  const url = req.url ?? ''
  // Clients never send a fragment; if one is there anyway, nothing in it counts.
  const hash = url.indexOf('#')
  const target = hash === -1 ? url : url.slice(0, hash)
  const q = target.indexOf('?')
  if (q === -1) return undefined
  // Only the query string is parsed, so an odd path (`//host/...`) cannot change what is read.
  const token = new URLSearchParams(target.slice(q + 1)).get('token')
  return token === null || token === '' ? undefined : token
}
