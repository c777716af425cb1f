// Frames that straddle TCP reads. A client's frames reach the node in whatever pieces the network
// makes; the node must read a frame cut anywhere, also right after a pong (when the `ws` transport
// gives back the read buffers an idle socket grew: only once nothing of a frame is left in them).
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { afterEach, describe, it } from 'node:test'
import { TEST_TRANSPORT, startServer, waitFor, type TestServer } from './helpers.js'

/** One masked client text frame (RFC 6455 §5.3), written by hand so that the test decides where TCP cuts it. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text)
  const n = payload.length
  const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 0xff])
  const mask = randomBytes(4)
  const masked = Buffer.alloc(n)
  for (let i = 0; i < n; i++) masked[i] = (payload[i] as number) ^ (mask[i % 4] as number)
  return Buffer.concat([head, mask, masked])
}

/** A raw TCP WebSocket client: writes exact bytes, collects the server's JSON messages (small, unfragmented text frames). */
class WireClient {
  readonly messages: Array<Record<string, unknown>> = []
  #buf = Buffer.alloc(0)
  #upgraded = false
  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.#read(chunk))
  }

  static async open(port: number): Promise<WireClient> {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    const c = new WireClient(socket)
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: holdfast.v1.json\r\n\r\n`,
    )
    await waitFor(() => c.#upgraded, 5000, 'the upgrade')
    return c
  }

  #read(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk])
    if (!this.#upgraded) {
      const end = this.#buf.indexOf('\r\n\r\n')
      if (end === -1) return
      assert.match(this.#buf.subarray(0, end).toString(), /^HTTP\/1\.1 101/)
      this.#upgraded = true
      this.#buf = this.#buf.subarray(end + 4)
    }
    for (;;) {
      if (this.#buf.length < 2) return
      const len7 = (this.#buf[1] as number) & 0x7f
      const head = len7 < 126 ? 2 : 4
      if (len7 === 127) throw new Error('unexpected 64-bit frame length in this test')
      const n = len7 < 126 ? len7 : this.#buf.readUInt16BE(2)
      if (this.#buf.length < head + n) return
      const text = this.#buf.subarray(head, head + n).toString()
      this.#buf = this.#buf.subarray(head + n)
      for (const line of text.split('\n')) this.messages.push(JSON.parse(line) as Record<string, unknown>)
    }
  }

  has(pred: (m: Record<string, unknown>) => boolean): boolean {
    return this.messages.some(pred)
  }
}

describe(`frames cut across TCP reads (${TEST_TRANSPORT} transport)`, () => {
  let srv: TestServer | undefined
  let wire: WireClient | undefined
  afterEach(async () => {
    wire?.socket.destroy()
    await srv?.close()
    srv = undefined
  })

  it('a pong, a whole command and half of the next in one read, the rest later: both commands are answered', async () => {
    srv = await startServer({ pingIntervalMs: 200, pongTimeoutMs: 5000 })
    wire = await WireClient.open(Number(new URL(srv.url).port))
    const c = wire
    c.socket.write(clientFrame('{"id":1,"type":"connect","version":1}'))
    await waitFor(() => c.has((m) => m['id'] === 1), 5000, 'the connect reply')
    await waitFor(() => c.has((m) => m['type'] === 'ping'), 5000, "the node's ping")

    const next = clientFrame(`{"id":3,"type":"subscribe","channel":"${'c'.repeat(150)}"}`)
    const cut = 40 // inside the payload
    c.socket.write(Buffer.concat([clientFrame('{"type":"pong"}'), clientFrame('{"id":2,"type":"ping"}'), next.subarray(0, cut)]))
    await waitFor(() => c.has((m) => m['id'] === 2), 5000, 'the reply to the whole command')
    c.socket.write(next.subarray(cut))
    await waitFor(() => c.has((m) => m['id'] === 3), 5000, 'the reply to the command cut in two')
    const reply = c.messages.find((m) => m['id'] === 3) as { error?: unknown; result?: unknown }
    assert.equal(reply.error, undefined)
    assert.equal(c.has((m) => m['type'] === 'disconnect'), false)
  })

  it('a frame cut in its header right after a pong is read whole', async () => {
    srv = await startServer({ pingIntervalMs: 200, pongTimeoutMs: 5000 })
    wire = await WireClient.open(Number(new URL(srv.url).port))
    const c = wire
    c.socket.write(clientFrame('{"id":1,"type":"connect","version":1}'))
    await waitFor(() => c.has((m) => m['type'] === 'ping'), 5000, "the node's ping")
    const next = clientFrame('{"id":2,"type":"ping"}')
    c.socket.write(Buffer.concat([clientFrame('{"type":"pong"}'), next.subarray(0, 1)]))
    // The node answered the pong (its next ping comes one interval later) before the rest arrives.
    const pings = c.messages.filter((m) => m['type'] === 'ping').length
    await waitFor(() => c.messages.filter((m) => m['type'] === 'ping').length > pings, 5000, 'the next ping')
    c.socket.write(next.subarray(1))
    await waitFor(() => c.has((m) => m['id'] === 2), 5000, 'the reply')
  })
})
