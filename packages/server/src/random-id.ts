import { randomFillSync } from 'node:crypto'

/**
 * Random ids for the connect path (trace ids, session ids) drawn from a pooled CSPRNG buffer.
 * Each `randomBytes()` call is a crypto job of its own (about 15 µs under load in the handshake
 * profile, two per connection); filling 4 KiB at once and handing out slices costs the same
 * randomness per byte and a fraction of the calls. Node's own `randomUUID()` pools the same way,
 * but its output has fixed version bits and dashes, which neither W3C trace ids nor our
 * base64url session ids want. Every byte is handed out once.
 */
const POOL_BYTES = 4096
const pool = Buffer.allocUnsafe(POOL_BYTES)
let offset = POOL_BYTES

function take(n: number): Buffer {
  if (n > POOL_BYTES) throw new RangeError(`random-id: at most ${POOL_BYTES} bytes at a time`)
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool)
    offset = 0
  }
  const bytes = pool.subarray(offset, offset + n)
  offset += n
  return bytes
}

/** `bytes` random bytes as lowercase hex. */
export function randomHex(bytes: number): string {
  return take(bytes).toString('hex')
}

/** `bytes` random bytes as base64url (no padding). */
export function randomBase64url(bytes: number): string {
  return take(bytes).toString('base64url')
}
