/**
 * The three Redis topologies a URL can name. Parsed here, without loading a Redis client, so that
 * the CLI can check a `--redis-url` before it decides to load the Redis engine at all.
 *
 *   redis://[[user]:password@]host[:port][/db]                   one server (rediss:// for TLS)
 *   redis+sentinel://[[user]:password@]host:port,host:port/<master-name>[?db=N&sentinelPassword=P]
 *   redis+cluster://[[user]:password@]host:port,host:port        Redis Cluster (startup nodes)
 *
 * The `+sentinel` and `+cluster` forms take `rediss+` for TLS as well. In a Sentinel URL the
 * password is the primary's; Sentinels that need one of their own take `sentinelPassword`.
 */

export interface RedisEndpoint {
  host: string
  port: number
}

interface Common {
  username?: string
  password?: string
  tls: boolean
}

export type RedisTopology =
  | ({ kind: 'single'; url: string } & Common)
  | ({ kind: 'sentinel'; sentinels: RedisEndpoint[]; name: string; db: number; sentinelPassword?: string } & Common)
  | ({ kind: 'cluster'; nodes: RedisEndpoint[] } & Common)

const MULTI = /^(rediss?)\+(sentinel|cluster):\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/

const DEFAULT_PORT = { sentinel: 26379, cluster: 6379 } as const

function fail(url: string, why: string): never {
  throw new TypeError(`holdfast: redis URL "${redact(url)}" ${why}`)
}

function decode(url: string, part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    return fail(url, 'has a badly percent-encoded part')
  }
}

function endpoint(url: string, raw: string, defaultPort: number): RedisEndpoint {
  // host, host:port, [v6], [v6]:port
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::(\d+))?$/.exec(raw)
  if (m === null) return fail(url, `has a bad host "${raw}" (expected host:port)`)
  const port = m[2] === undefined ? defaultPort : Number(m[2])
  if (!Number.isSafeInteger(port) || port < 1 || port > 65535) return fail(url, `has a bad port in "${raw}"`)
  const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1')
  return { host, port }
}

/** Parse a Redis URL into the topology it names; a bad URL throws a TypeError that says what is wrong. */
export function parseRedisUrl(input: string): RedisTopology {
  if (typeof input !== 'string' || input.trim() === '') throw new TypeError('holdfast: the redis URL must be a non-empty string')
  const url = input.trim()
  const m = MULTI.exec(url)
  if (m === null) {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return fail(url, 'is not a URL (expected redis://host:port, redis+sentinel://host:port,host:port/<master-name> or redis+cluster://host:port,host:port)')
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      return fail(url, 'must use redis://, rediss://, redis+sentinel:// or redis+cluster://')
    }
    if (parsed.hostname === '') return fail(url, 'names no host')
    return {
      kind: 'single',
      url,
      tls: parsed.protocol === 'rediss:',
      ...(parsed.username === '' ? {} : { username: decode(url, parsed.username) }),
      ...(parsed.password === '' ? {} : { password: decode(url, parsed.password) }),
    }
  }
  const tls = m[1] === 'rediss'
  const kind = m[2] as 'sentinel' | 'cluster'
  const userinfo = m[3]
  const hostsPart = m[4] as string
  const path = m[5] ?? ''
  const query = new URLSearchParams((m[6] ?? '').slice(1))
  const common: Common = { tls }
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':')
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon)
    const pass = colon < 0 ? '' : userinfo.slice(colon + 1)
    if (user !== '') common.username = decode(url, user)
    if (pass !== '') common.password = decode(url, pass)
  }
  const hosts = hostsPart.split(',').map((h) => h.trim())
  if (hosts.length === 0 || hosts.some((h) => h === '')) return fail(url, `names no ${kind === 'sentinel' ? 'Sentinel' : 'cluster node'} (expected host:port,host:port)`)
  const endpoints = hosts.map((h) => endpoint(url, h, DEFAULT_PORT[kind]))
  for (const key of query.keys()) {
    if (!(kind === 'sentinel' && (key === 'db' || key === 'sentinelPassword'))) return fail(url, `has an unknown parameter "${key}"`)
  }
  if (kind === 'cluster') {
    if (path !== '' && path !== '/') return fail(url, 'has a path, but a cluster has no database or name to select')
    return { kind, nodes: endpoints, ...common }
  }
  const name = decode(url, path.replace(/^\//, ''))
  if (name === '' || name.includes('/')) return fail(url, 'must end with the master name (redis+sentinel://host:port,host:port/<master-name>)')
  const dbRaw = query.get('db') ?? '0'
  const db = /^\d+$/.test(dbRaw) ? Number(dbRaw) : Number.NaN
  if (!Number.isSafeInteger(db) || db > 15) return fail(url, `has a bad db "${dbRaw}"`)
  const sentinelPassword = query.get('sentinelPassword')
  return { kind, sentinels: endpoints, name, db, ...common, ...(sentinelPassword === null || sentinelPassword === '' ? {} : { sentinelPassword }) }
}

/** The URL with every password replaced by `***`, for logs and error messages. Never throws. */
export function redact(url: string): string {
  if (typeof url !== 'string') return '(not a string)'
  return url
    .replace(/^([a-z+]+:\/\/[^:@/?#]*:)[^@/?#]*@/i, '$1***@')
    .replace(/([?&]sentinelPassword=)[^&#]*/g, '$1***')
}

/** "host:port" of an endpoint, with brackets around an IPv6 address. */
export function endpointName(e: RedisEndpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`
}
