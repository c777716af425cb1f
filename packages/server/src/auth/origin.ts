type Scheme = 'http:' | 'https:'

const SCHEMES: readonly Scheme[] = ['http:', 'https:']
const DEFAULT_PORT: Readonly<Record<Scheme, number>> = { 'http:': 80, 'https:': 443 }
/** `host` or `[v6]`, then an optional port; anything else (path, query, userinfo) is not an origin. */
const HOST_PORT_RE = /^(\[[0-9A-Fa-f:.]+\]|[^:/?#@%[\]\s]+)(?::(\d{1,5}))?$/
/** A host after URL normalisation: DNS labels or an IPv4 address, or a bracketed IPv6 address. */
const HOSTNAME_RE = /^(?:(?:[a-z0-9_-]+\.)*[a-z0-9_-]+|\[[0-9a-f:.]+\])$/

interface Parsed {
  scheme: Scheme | undefined
  host: string
  /** The explicit port, or undefined for the scheme's default. */
  port: number | undefined
}

/** Split `[scheme://]host[:port]` and normalise it the way browsers serialise an origin. */
function parse(value: string, requireScheme: boolean): Parsed | undefined {
  let rest = value
  let scheme: Scheme | undefined
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(value)
  if (m !== null) {
    const s = `${m[1]!.toLowerCase()}:`
    if (s !== 'http:' && s !== 'https:') return undefined
    scheme = s
    rest = m[2]!
  } else if (requireScheme) {
    return undefined
  }
  const hp = HOST_PORT_RE.exec(rest)
  if (hp === null) return undefined
  let port: number | undefined
  if (hp[2] !== undefined) {
    port = Number(hp[2])
    if (port < 1 || port > 65535) return undefined
  }
  let host: string
  try {
    // Lower-cases, turns IDNs into punycode and canonicalises IP addresses, as browsers do.
    host = new URL(`http://${hp[1]!}`).hostname
  } catch {
    return undefined
  }
  if (!HOSTNAME_RE.test(host)) return undefined
  return { scheme, host, port }
}

const key = (scheme: Scheme, host: string, port: number): string => `${scheme}//${host}:${port}`

interface WildcardRule {
  scheme: Scheme
  /** Matches hosts ending in `.${suffix}`. */
  suffix: string
  port: number
}

/**
 * Build the `Origin` check for the WebSocket upgrade from `allowedOrigins`. Entries are exact origins
 * (`https://app.example.com`, `http://localhost:3000`) or patterns (`https://*.example.com`, which
 * matches any depth of subdomain but not `example.com` itself). An entry without a scheme
 * (`*.example.com`, `example.com:8443`) matches both http and https; an entry without a port means
 * the scheme's default port. `*` allows every origin, as does an empty list.
 *
 * The returned function allows a request without an `Origin` header (non-browser clients cannot be
 * held to it anyway) and refuses a malformed one, including the opaque origin `null`.
 */
export function createOriginCheck(allowed: string[]): (origin: string | undefined) => boolean {
  if (!Array.isArray(allowed)) throw new TypeError('holdfast: option "allowedOrigins" must be an array of strings')
  const exact = new Set<string>()
  const wildcards: WildcardRule[] = []
  let allowAll = allowed.length === 0
  for (const entry of allowed) {
    if (typeof entry !== 'string') throw new TypeError('holdfast: option "allowedOrigins" must be an array of strings')
    const trimmed = entry.trim()
    if (trimmed === '*') {
      allowAll = true
      continue
    }
    // Parse the pattern's suffix as a host of its own, so it is normalised exactly like an Origin.
    const wildcard = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/)?\*\./.exec(trimmed)
    const parsed = parse(wildcard === null ? trimmed : wildcard[0].slice(0, -2) + trimmed.slice(wildcard[0].length), false)
    if (parsed === undefined) {
      throw new TypeError(
        `holdfast: option "allowedOrigins" has an invalid entry "${entry}" (expected an origin like "https://app.example.com" or a pattern like "https://*.example.com")`,
      )
    }
    for (const scheme of parsed.scheme === undefined ? SCHEMES : [parsed.scheme]) {
      const port = parsed.port ?? DEFAULT_PORT[scheme]
      if (wildcard === null) exact.add(key(scheme, parsed.host, port))
      else wildcards.push({ scheme, suffix: parsed.host, port })
    }
  }
  if (allowAll) return () => true

  return function isOriginAllowed(origin: string | undefined): boolean {
    if (origin === undefined) return true
    // Browsers send the ASCII (punycode) serialisation; anything else did not come from one.
    if (!/^[\x21-\x7e]+$/.test(origin)) return false
    const parsed = parse(origin, true)
    if (parsed === undefined || parsed.scheme === undefined) return false
    const port = parsed.port ?? DEFAULT_PORT[parsed.scheme]
    if (exact.has(key(parsed.scheme, parsed.host, port))) return true
    return wildcards.some((w) => w.scheme === parsed.scheme && w.port === port && parsed.host.endsWith(`.${w.suffix}`))
  }
}
