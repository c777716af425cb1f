import type { IncomingMessage } from 'node:http'

/**
 * What the gateway needs from a WebSocket, whatever library carries it (ws today; uWebSockets.js
 * can implement the same surface). Kept minimal so the hot path costs one virtual call.
 */
export interface TransportSocket {
  /** The negotiated subprotocol ('' for none). */
  readonly protocol: string
  /** Bytes accepted by `send` but not yet written to the kernel. */
  readonly bufferedAmount: number
  send(data: Uint8Array, binary: boolean): void
  close(code: number, reason: string): void
  /** Destroy at once, without a closing handshake (used when the peer is gone or hostile). */
  terminate(): void
}

/** Events a transport feeds into a connection. */
export interface TransportSink {
  onFrame(data: Uint8Array | string, isBinary: boolean): void
  onClose(code: number, reason: string): void
}

/** Request facts the gateway keeps from the upgrade. */
export interface UpgradeInfo {
  ip: string
  origin: string | undefined
  traceId: string
  request: IncomingMessage
}
