import type { IncomingHttpHeaders } from 'node:http'
import { Subprotocols } from '@holdfast/protocol'

/**
 * What the gateway needs from a WebSocket, whatever library carries it (`ws` or uWebSockets.js).
 * Kept minimal so the hot path costs one virtual call.
 */
export interface TransportSocket {
  /** The negotiated subprotocol ('' for none). */
  readonly protocol: string
  /** Bytes accepted by `send` but not yet written to the kernel. */
  readonly bufferedAmount: number
  write(data: Uint8Array, binary: boolean): void
  /**
   * Write one message given in pieces (`byteLength` in all), without joining them first. Optional:
   * without it the pieces are joined and written with `write`.
   */
  writePieces?(parts: readonly Uint8Array[], byteLength: number, binary: boolean): void
  close(code: number, reason: string): void
  /** Destroy at once, without a closing handshake (used when the peer is gone or hostile). */
  terminate(): void
  /** Stop reading the peer's frames (a connection closed for flooding). Optional: uWS has no way to. */
  pause?(): void
  /**
   * Give back what the socket grew for frames it has finished with (called at each pong: often
   * the last frame for a while). Optional: only the `ws` transport keeps such state.
   */
  compact?(): void
}

/** Events a transport feeds into a connection. */
export interface TransportSink {
  onFrame(data: Uint8Array | string, isBinary: boolean): void
  onClose(code: number, reason: string): void
}

/**
 * The upgrade request as admission and the `authenticate` hook see it. With the `ws` transport it
 * is node:http's IncomingMessage itself; uWebSockets.js has none, so its transport builds this
 * minimal object (header names lower-case, `url` with the query string).
 */
export interface UpgradeRequest {
  headers: IncomingHttpHeaders
  url?: string | undefined
  method?: string | undefined
  socket: { remoteAddress?: string | undefined }
}

export type Accept = (socket: TransportSocket) => TransportSink

/** One upgrade waiting for the gateway's admission decision, whatever transport carries it. */
export interface PendingUpgrade {
  readonly request: UpgradeRequest
  /** The client went away while admission was in flight. */
  gone(): boolean
  /** Answer with an HTTP status and a JSON error body (see `refusal`); no WebSocket is created. */
  refuse(status: number, code: string, message: string, headers: Record<string, string>): void
  /** Complete the handshake. `accept` runs synchronously if the transport accepts it. */
  upgrade(accept: Accept): void
}

/** Prefer MessagePack when offered; otherwise JSON; '' when neither is offered. */
export function chooseSubprotocol(offered: { has(p: string): boolean }): string {
  if (offered.has(Subprotocols.msgpack)) return Subprotocols.msgpack
  if (offered.has(Subprotocols.json)) return Subprotocols.json
  return ''
}

/** The status line text and JSON body of a refused upgrade (the same on every transport). */
export function refusal(status: number, code: string, message: string): { status: string; body: string } {
  return { status: `${status} ${STATUS_TEXT[status] ?? 'Error'}`, body: JSON.stringify({ error: { code, message } }) }
}

/** Refusals that tell the client to come back later carry Retry-After. */
export function refusalHeaders(status: number): Record<string, string> {
  return status === 429 || status === 503 ? { 'Retry-After': '1' } : {}
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}
