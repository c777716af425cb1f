/**
 * The few WebSocket frames the scale bench's load generator needs, written by hand (RFC 6455).
 *
 * Why not a library: the generator holds up to 19,000 client connections per process, and what it
 * measures is the server. `ws`'s client costs a `WebSocket`, a `Receiver` (a Writable stream), a
 * `Sender` and their buffers per connection, several times what a bare `net.Socket` costs (the
 * figures are in docs/benchmarks.md, "A million connections"); no maintained library offers a
 * client without those per-connection objects. So each connection is one `net.Socket` subclass
 * with three fields, and this file is the whole protocol layer: a parser for unmasked server
 * frames and a few client frames built once per process.
 *
 * Client frames are masked with the all-zero key. RFC 6455 asks clients for an unpredictable key
 * to protect proxies from cache poisoning by hostile page scripts; that concern does not exist for
 * a load generator on loopback, servers unmask the same way whatever the key, and a fixed key lets
 * every connection share the same prebuilt bytes (no allocation per command or pong).
 */

/** A masked client frame (FIN set) with `opcode` carrying `payload`, masking key 0. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10
  const frame = Buffer.alloc(head + 4 + n)
  frame[0] = 0x80 | opcode
  if (n < 126) frame[1] = 0x80 | n
  else if (n < 65536) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(n, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(n), 2)
  }
  // bytes head..head+3 are the (zero) masking key; XOR with 0 leaves the payload as it is.
  payload.copy(frame, head + 4)
  return frame
}

export const OP_TEXT = 0x1
export const OP_BINARY = 0x2
export const OP_CLOSE = 0x8
export const OP_PING = 0x9
export const OP_PONG = 0xa

/** A fixed Sec-WebSocket-Key: the server's accept value is checked against this one's. */
export const HANDSHAKE_KEY = 'aG9sZGZhc3Qtc2NhbGUtMQ=='

export function upgradeRequest(host: string, path: string, protocol: string | undefined): Buffer {
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${HANDSHAKE_KEY}`,
    'Sec-WebSocket-Version: 13',
  ]
  if (protocol !== undefined) lines.push(`Sec-WebSocket-Protocol: ${protocol}`)
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`)
}

export interface FrameSink {
  /** One complete, unfragmented server frame. `payload` is only valid during the call. */
  frame(opcode: number, payload: Buffer): void
}

/**
 * Split `data` into server frames, calling `sink.frame` for each complete one. Returns the bytes
 * of an incomplete frame at the end (copied, so a big read buffer is not kept alive by a few
 * bytes), or undefined. Fragmented messages are not produced by the servers measured here
 * (holdfast, ws and uWS send whole messages) and are reported as a protocol error.
 */
export function parseFrames(data: Buffer, sink: FrameSink): Buffer | undefined {
  let i = 0
  const end = data.length
  while (end - i >= 2) {
    const b0 = data[i] as number
    const b1 = data[i + 1] as number
    if ((b1 & 0x80) !== 0) throw new Error('a server frame was masked')
    if ((b0 & 0x80) === 0 || (b0 & 0x0f) === 0) throw new Error('a fragmented server frame')
    let len = b1 & 0x7f
    let head = 2
    if (len === 126) {
      if (end - i < 4) break
      len = data.readUInt16BE(i + 2)
      head = 4
    } else if (len === 127) {
      if (end - i < 10) break
      len = data.readUInt32BE(i + 2) * 2 ** 32 + data.readUInt32BE(i + 6)
      head = 10
    }
    if (end - i < head + len) break
    sink.frame(b0 & 0x0f, data.subarray(i + head, i + head + len))
    i += head + len
  }
  return i === end ? undefined : Buffer.from(data.subarray(i))
}
