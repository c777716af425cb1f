import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { describe, test, type TestContext } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import { sha256, startProxy, within } from './chaos-helpers.js'

async function startWsEcho(t: TestContext): Promise<{ port: number; server: WebSocketServer }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  server.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    ws.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.once('listening', resolve))
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const c of server.clients) c.terminate()
        server.close(() => resolve())
      }),
  )
  return { port: (server.address() as AddressInfo).port, server }
}

async function open(t: TestContext, port: number): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
  t.after(() => ws.terminate())
  ws.on('error', () => {})
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  await within(10_000, 'the WebSocket to open through the proxy', new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('close', (code) => reject(new Error(`closed with ${code} before opening`)))
  }))
  return { ws, closed }
}

describe('ChaosProxy with WebSocket traffic', () => {
  test('frames sliced into 7-byte writes with latency and jitter are reassembled intact and in order', async (t) => {
    const { port } = await startWsEcho(t)
    const proxy = await startProxy(t, port, { sliceBytes: 7, latencyMs: 10, jitterMs: 10 })
    const { ws } = await open(t, proxy.port)

    // Small text frames, a frame whose 7-byte slices split the length header, and a large binary frame.
    const sent: (string | Buffer)[] = []
    for (let i = 0; i < 40; i++) sent.push(`message ${i} ${'x'.repeat(i * 7)}`)
    sent.push(randomBytes(200))
    sent.push(randomBytes(70_000))
    sent.push('last')
    const received: (string | Buffer)[] = []
    const done = new Promise<void>((resolve) => {
      ws.on('message', (data, isBinary) => {
        received.push(isBinary ? (data as Buffer) : data.toString())
        if (received.length === sent.length) resolve()
      })
    })
    for (const m of sent) ws.send(m)
    await within(30_000, `${sent.length} echoes`, done)
    assert.equal(received.length, sent.length)
    for (let i = 0; i < sent.length; i++) {
      const a = sent[i] as string | Buffer
      const b = received[i] as string | Buffer
      if (typeof a === 'string') assert.equal(b, a, `message ${i}`)
      else assert.equal(sha256(b as Buffer), sha256(a), `binary message ${i}`)
    }
  })

  test('a reset is seen by the ws client as an abnormal close (1006)', async (t) => {
    const { port, server } = await startWsEcho(t)
    const proxy = await startProxy(t, port, { sliceBytes: 7, latencyMs: 5 })
    const { ws, closed } = await open(t, proxy.port)
    const serverSide = [...server.clients][0]
    assert.ok(serverSide)
    const serverClosed = new Promise<number>((resolve) => serverSide.on('close', (code) => resolve(code)))
    ws.send('hello')
    await within(5_000, 'the echo', new Promise((resolve) => ws.once('message', resolve)))
    assert.equal(proxy.resetAll(), 1)
    assert.equal(await within(5_000, 'the client close', closed), 1006)
    assert.equal(await within(5_000, 'the server-side close', serverClosed), 1006)
  })
})
