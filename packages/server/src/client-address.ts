/**
 * The client's address behind proxies. A node behind nginx, an ingress controller or a cloud load
 * balancer sees the proxy's address on every socket; the per-IP limits, the logs and the connect
 * proxy need the client's. Proxies say it in `X-Forwarded-For` (each hop appends the address it
 * received the request from) or `X-Real-IP`, and a client can write either header itself, so they
 * are believed only when the hop that sent them is one the operator trusts (`trustProxy`).
 *
 * The walk over `X-Forwarded-For` is @fastify/proxy-addr's (Express's and Fastify's): from the
 * socket's address leftwards, skip every trusted hop, stop at the first address that is not one.
 * Entries a client wrote to the left of that are never reached.
 */
import { isIP } from 'node:net'
import proxyAddr from '@fastify/proxy-addr'
import { normalizeIp } from './limits/ip-limiter.js'
import type { UpgradeRequest } from './transport/transport.js'

/** `trustProxy`: CIDRs or addresses, as a list or one comma-separated string; `loopback`, `linklocal`, `uniquelocal` name their ranges. */
export type TrustProxy = string | readonly string[]

/** A compiled `trustProxy`: which hops may speak for the client. */
export interface TrustedProxies {
  /** The entries as given (for logs and errors). */
  readonly list: readonly string[]
  /** Whether this hop (an address as a socket or a header reports it) is trusted. */
  trusts(ip: string): boolean
}

/**
 * Check and compile `trustProxy`; undefined (or an empty list) trusts nobody: every client is
 * its socket's address, whatever headers it sends. Throws a TypeError naming `name` for an entry
 * that is neither an address, a CIDR nor a named range.
 */
export function resolveTrustProxy(value: unknown, name = 'trustProxy'): TrustedProxies | undefined {
  if (value === undefined) return undefined
  let list: string[]
  if (typeof value === 'string') list = value.split(',')
  else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) list = [...(value as string[])]
  else throw new TypeError(`holdfast: option "${name}" must be a list of CIDRs (or one comma-separated string)`)
  list = list.map((v) => v.trim()).filter((v) => v !== '')
  if (list.length === 0) return undefined
  let compiled: (addr: string, i: number) => boolean
  try {
    compiled = proxyAddr.compile(list)
  } catch (err) {
    throw new TypeError(`holdfast: option "${name}": ${(err as Error).message} (expected an address or CIDR such as 10.0.0.0/8, or loopback, linklocal, uniquelocal)`)
  }
  return { list, trusts: (ip) => compiled(ip, 0) }
}

/**
 * The client's address for an upgrade request: the socket's, unless that hop is trusted; then the
 * first untrusted address of `X-Forwarded-For` walking right to left (or its leftmost entry when
 * every hop is trusted), or else `X-Real-IP`. An entry that is not an IP address (a port glued to
 * it, garbage) ends the walk at the last trusted hop. IPv4-mapped IPv6 is folded to IPv4.
 */
export function clientAddress(req: UpgradeRequest, trusted: TrustedProxies | undefined): string {
  const peer = normalizeIp(req.socket.remoteAddress ?? '')
  if (trusted === undefined || !trusted.trusts(peer)) return peer
  const xff = req.headers['x-forwarded-for']
  if (typeof xff === 'string' && xff.trim() !== '') {
    // [socket, rightmost, ..., first untrusted]: the chain as far as trusted hops vouch for it.
    const chain = proxyAddr.all(req as Parameters<typeof proxyAddr.all>[0], (addr) => trusted.trusts(addr))
    let address = peer
    for (let i = 1; i < chain.length; i++) {
      const hop = chain[i] as string
      if (isIP(hop) === 0) break
      address = normalizeIp(hop)
    }
    return address
  }
  const real = req.headers['x-real-ip']
  if (typeof real === 'string' && isIP(real.trim()) !== 0) return normalizeIp(real.trim())
  return peer
}
