/**
 * Loopback ports for the test harnesses that start real servers (redis-server, nginx): a free port
 * to hand to a process that cannot listen on port 0 and report back, and a probe for "listening yet".
 */
import { connect, createServer } from 'node:net'

/** A port of 127.0.0.1 that was free a moment ago (the OS picks it; the probe socket is closed at once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => (addr !== null && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

/** true when 127.0.0.1:port accepts a TCP connection now. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
