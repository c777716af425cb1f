/**
 * PROXY protocol v1 and v2 on a listener, for TCP load balancers (AWS NLB, HAProxy `send-proxy`,
 * GCP, ingress-nginx in TCP mode) that cannot add an HTTP header: they send one header line (v1)
 * or block (v2) before the client's bytes, naming the client's address.
 *
 * The header formats are parsed by proxy-protocol-js; this file does the framing around it (how
 * many bytes the header is, with bounds and a deadline), decides whom to believe, and hands the
 * socket to the HTTP server with the client's address in `remoteAddress`, so that everything
 * downstream (the gateway's per-IP limits, logs, `X-Forwarded-For` handling) sees the client.
 *
 * Who may send a header: only a peer in `trusted` (the load balancers). A connection from a
 * trusted peer may also come without a header (kubelet probes, a health checker, an operator's
 * curl): it is served with the peer's own address. A header from any other peer would let a client
 * choose its own address, so that connection is closed. The header is recognised by its first
 * bytes (`PROXY ` or the v2 signature), which no HTTP request starts with.
 */
import type { Server, Socket } from 'node:net'
import { isIP } from 'node:net'
import { Command, V1ProxyProtocol, V2ProxyProtocol, IPv4ProxyAddress, IPv6ProxyAddress } from 'proxy-protocol-js'
import type { TrustedProxies } from '../client-address.js'
import { normalizeIp } from '../limits/ip-limiter.js'

export interface ProxyProtocolOptions {
  /** Peers allowed to send a header (`trustProxy`). */
  trusted: TrustedProxies
  /**
   * Time for a header to arrive once its first byte has, and for the first byte of a connection
   * from a trusted peer, in ms. A connection still silent then is handed over without a header.
   * @default 5000
   */
  headerTimeoutMs?: number
  /** A connection refused before HTTP (an untrusted or malformed header); for the metric and the log. */
  onRefused?: (reason: ProxyRefusal, peer: string) => void
}

export type ProxyRefusal = 'untrusted_header' | 'bad_header' | 'header_timeout'

const V1_PREFIX = Buffer.from('PROXY ', 'latin1')
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
/** The spec's bound for a v1 line, CRLF included. */
const V1_MAX = 107
/** 16 fixed bytes plus addresses and TLVs. The spec allows 64 KiB of TLVs; load balancers send tens of bytes. */
const V2_MAX = 16 + 2048
const DEFAULT_HEADER_TIMEOUT_MS = 5000

type Scan =
  | { kind: 'more' }
  | { kind: 'none' }
  | { kind: 'bad' }
  /** `address` undefined: a header that names no client (LOCAL, UNKNOWN, UNIX): keep the peer's. */
  | { kind: 'header'; length: number; address: string | undefined; port: number | undefined }

/** True while `buf` could still become `sig` (it is a prefix of it, or starts with it). */
function couldBe(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length)
  return buf.subarray(0, n).equals(sig.subarray(0, n))
}

function v4(a: readonly number[]): string {
  return a.join('.')
}

function v6(a: readonly number[]): string {
  // An IPv4 client of a dual-stack balancer (::ffff:a.b.c.d) is that IPv4 client.
  if (a.slice(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff) return v4(a.slice(12))
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push((((a[i] as number) << 8) | (a[i + 1] as number)).toString(16))
  // The WHATWG URL parser writes the canonical (compressed) form, as sockets report addresses.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
}

/** Look at what has arrived so far: a complete header, not a header at all, or not enough yet. */
export function scanProxyHeader(buf: Buffer): Scan {
  if (buf.length === 0) return { kind: 'more' }
  if (couldBe(buf, V1_PREFIX)) {
    if (buf.length < V1_PREFIX.length) return { kind: 'more' }
    const end = buf.indexOf('\r\n', 0, 'latin1')
    if (end === -1) return buf.length >= V1_MAX ? { kind: 'bad' } : { kind: 'more' }
    if (end + 2 > V1_MAX) return { kind: 'bad' }
    const line = buf.toString('latin1', 0, end + 2)
    if (/^PROXY UNKNOWN[ \r]/.test(line)) return { kind: 'header', length: end + 2, address: undefined, port: undefined }
    let parsed: V1ProxyProtocol
    try {
      parsed = V1ProxyProtocol.parse(line)
    } catch {
      return { kind: 'bad' }
    }
    const address = parsed.source.ipAddress
    if (isIP(address) === 0 || !(parsed.source.port >= 0 && parsed.source.port <= 65535)) return { kind: 'bad' }
    return { kind: 'header', length: end + 2, address, port: parsed.source.port }
  }
  if (couldBe(buf, V2_SIGNATURE)) {
    if (buf.length < 16) return { kind: 'more' }
    const length = 16 + buf.readUInt16BE(14)
    if (length > V2_MAX) return { kind: 'bad' }
    if (buf.length < length) return { kind: 'more' }
    let parsed: V2ProxyProtocol
    try {
      parsed = V2ProxyProtocol.parse(new Uint8Array(buf.buffer, buf.byteOffset, length))
    } catch {
      return { kind: 'bad' }
    }
    const a = parsed.proxyAddress
    if (parsed.command === Command.PROXY && a instanceof IPv4ProxyAddress) return { kind: 'header', length, address: v4(a.sourceAddress.address), port: a.sourcePort }
    if (parsed.command === Command.PROXY && a instanceof IPv6ProxyAddress) return { kind: 'header', length, address: v6(a.sourceAddress.address), port: a.sourcePort }
    return { kind: 'header', length, address: undefined, port: undefined }
  }
  return { kind: 'none' }
}

/** Make the socket report the client's address (everything downstream reads these getters). */
function setRemote(socket: Socket, address: string, port: number | undefined): void {
  Object.defineProperty(socket, 'remoteAddress', { value: address, configurable: true })
  Object.defineProperty(socket, 'remoteFamily', { value: isIP(address) === 6 ? 'IPv6' : 'IPv4', configurable: true })
  if (port !== undefined) Object.defineProperty(socket, 'remotePort', { value: port, configurable: true })
}

/**
 * Accept PROXY headers on `server` (a node:http server, before or after it listens): its
 * `connection` listeners run only once the header, if any, has been read and taken off the
 * stream. Call it once, before connections arrive.
 */
export function acceptProxyProtocol(server: Server, opts: ProxyProtocolOptions): void {
  const timeoutMs = opts.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS
  const downstream = server.listeners('connection') as Array<(socket: Socket) => void>
  server.removeAllListeners('connection')
  const handOver = (socket: Socket, rest: Buffer | undefined): void => {
    for (const l of downstream) l.call(server, socket)
    // The HTTP server reads from here on; what came after the header is its first input.
    if (rest !== undefined && rest.length > 0) socket.unshift(rest)
    socket.resume()
  }
  server.on('connection', (socket: Socket) => {
    const peer = normalizeIp(socket.remoteAddress ?? '')
    const trustedPeer = opts.trusted.trusts(peer)
    let buf: Buffer = Buffer.alloc(0)
    const refuse = (reason: ProxyRefusal): void => {
      cleanup()
      opts.onRefused?.(reason, peer)
      socket.destroy()
    }
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      const scan = scanProxyHeader(buf)
      if (scan.kind === 'more') return
      if (scan.kind === 'bad') return refuse('bad_header')
      cleanup()
      if (scan.kind === 'none') return handOver(socket, buf)
      if (!trustedPeer) return refuse('untrusted_header')
      if (scan.address !== undefined) setRemote(socket, normalizeIp(scan.address), scan.port)
      handOver(socket, buf.subarray(scan.length))
    }
    const onTimeout = (): void => {
      if (buf.length > 0) return refuse('header_timeout')
      // Silent so far: not ours to judge; the HTTP server's own timeouts apply from here.
      cleanup()
      handOver(socket, undefined)
    }
    const timer = setTimeout(onTimeout, timeoutMs)
    const onClose = (): void => cleanup()
    // Until the HTTP server has the socket, a reset is ours to swallow (unhandled, it would throw).
    const onError = (): void => {
      cleanup()
      socket.destroy()
    }
    const cleanup = (): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', onClose)
      socket.off('error', onError)
      socket.pause()
    }
    socket.on('data', onData)
    socket.once('close', onClose)
    socket.on('error', onError)
  })
}
