import type { Resolved } from './endpoints.js'

/** Bounds of a discovery answer's ttl: a node cannot make clients poll it hot, or never again. */
const MIN_TTL_MS = 1000
const MAX_TTL_MS = 3_600_000
/** Most nodes taken from one answer. */
const MAX_NODES = 1000

const WS_URL = /^wss?:\/\/[^/]/i

function wsUrls(list: unknown, what: string): string[] {
  if (!Array.isArray(list)) throw new Error(`${what} is not a list`)
  const urls = list.slice(0, MAX_NODES).filter((u): u is string => typeof u === 'string' && WS_URL.test(u))
  if (urls.length === 0) throw new Error(`${what} lists no ws:// or wss:// URL`)
  return urls
}

/**
 * Fetch a `GET /discovery` document (`{ nodes: [{ id, url }], ttl }`, ttl in seconds) from a
 * holdfast node, or call the application's resolver. An empty or malformed answer is an error:
 * the client keeps its last known list rather than forget every node.
 */
export async function discover(source: string | (() => readonly string[] | Promise<readonly string[]>), defaultTtlMs: number, timeoutMs: number): Promise<Resolved> {
  if (typeof source === 'function') return { urls: wsUrls(await source(), 'the endpoint resolver\'s answer'), ttlMs: defaultTtlMs }
  const res = await fetch(source, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) })
  if (!res.ok) throw new Error(`GET ${source}: HTTP ${res.status}`)
  const doc = (await res.json()) as { nodes?: unknown; ttl?: unknown }
  const nodes = Array.isArray(doc.nodes) ? doc.nodes.map((n: unknown) => (typeof n === 'object' && n !== null ? (n as { url?: unknown }).url : undefined)) : doc.nodes
  const ttlMs = typeof doc.ttl === 'number' && Number.isFinite(doc.ttl) ? Math.min(MAX_TTL_MS, Math.max(MIN_TTL_MS, doc.ttl * 1000)) : defaultTtlMs
  return { urls: wsUrls(nodes, `${source}`), ttlMs }
}
