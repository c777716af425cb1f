import assert from 'node:assert/strict'
import { test } from 'node:test'
import { jsonCodec, type ServerMessage } from '@holdfast/protocol'
import type { WebSocketConstructor } from '../src/options.js'
import { Transport, webSocketCarrier, type TransportHandlers } from '../src/transport.js'
import { FakeSocket, microtasks } from './helpers/fake-socket.js'

/** A socket like a browser's: no terminate(), and close() throws on codes or reasons a page may not send. */
class BrowserSocket extends FakeSocket {
  override close(code?: number, reason?: string): void {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) throw new Error('InvalidAccessError')
    if (reason !== undefined && new TextEncoder().encode(reason).byteLength > 123) throw new Error('SyntaxError')
    super.close(code, reason)
  }
}
Object.defineProperty(BrowserSocket.prototype, 'terminate', { value: undefined })

function handlers(log: string[]): TransportHandlers {
  return {
    open: () => log.push('open'),
    heard: () => log.push('heard'),
    messages: (msgs: ServerMessage[]) => log.push(`messages ${msgs.length}`),
    malformed: (err) => log.push(`malformed ${err.code}`),
    close: (code) => log.push(`close ${code}`),
  }
}

test('local closes use a code and a reason a browser accepts, even for a hard close', () => {
  for (const [code, hard] of [[1001, true], [1006, false], [4005, true]] as const) {
    FakeSocket.reset()
    const t = new Transport(webSocketCarrier(BrowserSocket as unknown as WebSocketConstructor), 'ws://x', jsonCodec, 100, handlers([]))
    FakeSocket.last.open()
    t.close(code, 'é'.repeat(200), hard)
    const closed = FakeSocket.last.closedWith
    assert.ok(closed !== undefined, `code ${code} left the socket open`)
    assert.equal(closed.code, code === 4005 ? 4005 : 1000)
  }
})

test('after close() the socket events are ignored; sends are dropped', async () => {
  FakeSocket.reset()
  const log: string[] = []
  const t = new Transport(webSocketCarrier(FakeSocket as unknown as WebSocketConstructor), 'ws://x', jsonCodec, 100, handlers(log))
  const socket = FakeSocket.last
  socket.open()
  assert.equal(socket.binaryType, 'arraybuffer')
  socket.receive({ type: 'ping' })
  t.close(1000, 'bye')
  t.send({ type: 'pong' })
  socket.receive({ type: 'ping' })
  socket.serverClose(1006)
  await microtasks()
  assert.deepEqual(log, ['open', 'heard', 'messages 1'])
  assert.equal(socket.sent.length, 0)
})

test('an undecodable frame is reported, not thrown', () => {
  FakeSocket.reset()
  const log: string[] = []
  new Transport(webSocketCarrier(FakeSocket as unknown as WebSocketConstructor), 'ws://x', jsonCodec, 100, handlers(log))
  const socket = FakeSocket.last
  socket.open()
  ;(socket.onmessage as (ev: { data: string }) => void)({ data: '{not json' })
  assert.deepEqual(log, ['open', 'heard', 'malformed bad_request'])
})
