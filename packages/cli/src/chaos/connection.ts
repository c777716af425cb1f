import { connect, type Socket } from 'node:net'
import type { BlackholeMode, Direction, FaultConfig } from './faults.js'
import { Link } from './link.js'

/** What a connection needs from its proxy. */
export interface ConnectionHost {
  faults(): FaultConfig
  random(): number
  forwarded(direction: Direction, bytes: number): void
  dropped(bytes: number): void
  closedAfterBytes(): void
  /** Both sockets are closed; the connection can be forgotten. */
  finished(conn: ChaosConnection): void
}

/**
 * One client connection and its connection to the target, joined by two Links. It also decides
 * how endings travel: a FIN goes through the link like data (same delay, same order), a reset or
 * an error is passed on at once as a RST, and neither crosses a blackholed direction until it is
 * healed.
 */
export class ChaosConnection {
  readonly upstreamSocket: Socket
  private readonly up: Link
  private readonly down: Link
  private open = 2
  private done = false
  /** A RST waiting for its direction to be healed: which socket gets it. */
  private pendingReset: Socket | undefined
  private pendingResetDirection: Direction | undefined

  constructor(
    readonly client: Socket,
    target: { host: string; port: number },
    private readonly host: ConnectionHost,
  ) {
    // allowHalfOpen: a FIN from one side must not close the other direction, which may still
    // carry data (and may be delayed); each FIN is forwarded by its own link.
    this.upstreamSocket = connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true })
    const upstream = this.upstreamSocket
    // Nagle would merge the slices we write on purpose and add its own delay to ours.
    client.setNoDelay(true)
    const mode = (): BlackholeMode => host.faults().blackholeMode
    const linkHost = (direction: Direction) => ({
      faults: () => host.faults()[direction],
      blackholeMode: mode,
      random: host.random,
      forwarded: (n: number) => host.forwarded(direction, n),
      dropped: (n: number) => host.dropped(n),
      limitReached: () => this.closeAfterLimit(),
    })
    this.up = new Link(client, upstream, linkHost('upstream'))
    this.down = new Link(upstream, client, linkHost('downstream'))

    client.on('data', (chunk: Buffer) => this.up.push(chunk))
    upstream.on('data', (chunk: Buffer) => this.down.push(chunk))
    client.on('end', () => this.up.pushEnd())
    upstream.on('end', () => this.down.pushEnd())
    // A failed socket (ECONNRESET, EPIPE, a refused connect to the target) means the other side
    // would have seen a reset had there been no proxy: pass it on as a RST.
    client.on('error', () => this.relayReset('upstream', upstream))
    upstream.on('error', () => this.relayReset('downstream', client))
    const closed = (): void => {
      this.open -= 1
      if (this.open === 0) this.finish()
    }
    client.on('close', closed)
    upstream.on('close', closed)
  }

  get bytesUpstream(): number {
    return this.up.forwardedBytes
  }

  get bytesDownstream(): number {
    return this.down.forwardedBytes
  }

  /** RST both sockets at once, as a middlebox or a crashed peer would. */
  reset(): void {
    if (this.done) return
    this.up.dispose()
    this.down.dispose()
    this.pendingReset = undefined
    this.client.resetAndDestroy()
    this.upstreamSocket.resetAndDestroy()
  }

  /** Close both sockets without ceremony (the proxy is stopping). */
  destroy(): void {
    this.up.dispose()
    this.down.dispose()
    this.client.destroy()
    this.upstreamSocket.destroy()
  }

  /** The faults changed: reschedule both links, and deliver a reset that waited for a heal. */
  refresh(): void {
    if (this.done) return
    const pending = this.pendingReset
    if (pending !== undefined && this.pendingResetDirection !== undefined && !this.host.faults()[this.pendingResetDirection].blackhole) {
      this.pendingReset = undefined
      this.up.dispose()
      this.down.dispose()
      pending.resetAndDestroy()
      return
    }
    this.up.refresh()
    this.down.refresh()
  }

  private relayReset(direction: Direction, to: Socket): void {
    if (this.done) return
    const link = direction === 'upstream' ? this.up : this.down
    if (link.blackholed) {
      // The far side must not learn anything while partitioned; it hears of it after the heal.
      this.pendingReset = to
      this.pendingResetDirection = direction
      // Data from the far side has nowhere to go now, but it must keep being read and dropped.
      return
    }
    this.up.dispose()
    this.down.dispose()
    to.resetAndDestroy()
  }

  private closeAfterLimit(): void {
    this.host.closedAfterBytes()
    this.up.dispose()
    this.down.dispose()
    // FIN after the last byte, then close: the peers see a clean end of stream at the limit.
    for (const s of [this.client, this.upstreamSocket]) {
      if (s.destroyed) continue
      if (s.writableFinished) {
        s.destroy()
        continue
      }
      s.once('finish', () => s.destroy())
      if (!s.writableEnded) s.end()
    }
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    this.up.dispose()
    this.down.dispose()
    this.host.finished(this)
  }
}
