import { isIPv4, isIPv6 } from 'node:net'

/**
 * true for an address that cannot leave this machine: `localhost`, 127.0.0.0/8, `::1` (also
 * bracketed) and IPv4-mapped loopback. Other host names are not loopback even if they resolve
 * there today: DNS can change under a running proxy.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1')
  if (h === 'localhost') return true
  if (isIPv4(h)) return h.startsWith('127.')
  if (isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)
    return mapped?.[1] !== undefined && mapped[1].startsWith('127.')
  }
  return false
}
