/**
 * The hostile client of hostile.chaos.ts, in a process of its own (so that its floods load the
 * node, not the event loop where the well-behaved clients' latency is measured). Forked with an
 * IPC channel; on `{ type: 'run', ... }` it runs `concurrency` loops, each going round the attacks
 * below on fresh connections until the time is up, and answers with how each attack ended,
 * counted by outcome.
 *
 * An outcome is the WebSocket close code the node sent (`4007`), `error <code>` for an error reply
 * that left the connection open, or `http <status>` for a refused or non-WebSocket request.
 */
import { connect as tcpConnect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { RawClient } from '../../packages/server/test/helpers.js'

export interface HostileRun {
  type: 'run'
  url: string
  port: number
  durationMs: number
  concurrency: number
}

/** attack → outcome → count */
export type Outcomes = Record<string, Record<string, number>>

export type HostileMessage = { type: 'done'; outcomes: Outcomes; attacks: number } | { type: 'error'; message: string }

/** How long one attack may take before it counts as `hung` (the longest, a stalled frame, needs ping + pong + ticks). */
const ATTACK_TIMEOUT_MS = 15_000

type Attack = (url: string, port: number) => Promise<string>

function client(url: string, protocol: 'json' | 'msgpack' = 'json'): RawClient {
  return new RawClient(url, { protocol })
}

/** The underlying TCP socket of a RawClient (to write frames `ws` would refuse to build). */
function tcpOf(c: RawClient): Socket {
  return (c.ws as unknown as { _socket: Socket })._socket
}

async function closedCode(c: RawClient): Promise<string> {
  const closed = await c.waitClosed(ATTACK_TIMEOUT_MS)
  return String(closed.code)
}

/** A client frame: FIN + opcode, masked (clients must mask), with the given payload length header and bytes. */
function maskedFrame(opcode: number, payload: Buffer, declaredLength?: bigint): Buffer {
  const len = declaredLength ?? BigInt(payload.length)
  let header: Buffer
  if (len < 126n) header = Buffer.from([0x80 | opcode, 0x80 | Number(len)])
  else if (len < 65536n) {
    header = Buffer.alloc(4)
    header[0] = 0x80 | opcode
    header[1] = 0x80 | 126
    header.writeUInt16BE(Number(len), 2)
  } else {
    header = Buffer.alloc(10)
    header[0] = 0x80 | opcode
    header[1] = 0x80 | 127
    header.writeBigUInt64BE(len, 2)
  }
  const mask = randomBytes(4)
  const body = Buffer.from(payload)
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i % 4] as number)
  return Buffer.concat([header, mask, body])
}

const ATTACKS: Record<string, Attack> = {
  /** Random bytes in a binary frame after a proper connect. */
  'garbage-frame': async (url) => {
    const c = client(url)
    await c.connect()
    c.ws.send(randomBytes(64), { binary: true })
    return closedCode(c)
  },
  'invalid-json': async (url) => {
    const c = client(url)
    await c.connect()
    c.ws.send('{"id":2,"type":"publish","channel":', { binary: false })
    return closedCode(c)
  },
  /** A frame header declaring 1 TiB: refused from the header, before any allocation. */
  'huge-declared-length': async (url) => {
    const c = client(url)
    await c.connect()
    tcpOf(c).write(maskedFrame(0x2, Buffer.alloc(16), 1n << 40n))
    return closedCode(c)
  },
  /** A publish whose frame is past the node's frame limit (maxPayload + envelope). */
  'oversized-frame': async (url) => {
    const c = client(url)
    await c.connect()
    c.sendRaw({ id: 2, type: 'publish', channel: 'hostile:x', data: 'x'.repeat(200 * 1024), msgId: 'big' })
    return closedCode(c)
  },
  /** Data just over maxPayload in a frame the transport accepts: an error reply, the connection stays. */
  'oversized-data': async (url) => {
    const c = client(url)
    await c.connect()
    const reply = (await c.request({ type: 'publish', channel: 'hostile:x', data: 'x'.repeat(70 * 1024), msgId: 'over' }, ATTACK_TIMEOUT_MS)) as { error?: { code: number } }
    const open = c.closed === undefined
    c.close()
    return `error ${reply.error?.code ?? 'none'}${open ? '' : ' and closed'}`
  },
  /**
   * Commands far past the rate limit, each in its own frame, in bursts until the node closes the
   * connection. The node closes after more than `burst` refusals in a row (error replies before
   * that), so a flood slow enough to let its bucket refill in between only ever gets errors: the
   * bursts make sure this one is a flood.
   */
  'command-flood': async (url) => {
    const c = client(url)
    await c.connect()
    const frame = (id: number): string => JSON.stringify({ id, type: 'ping' })
    let id = 2
    while (c.closed === undefined && id < 50_000) {
      for (const end = id + 500; id < end; id++) c.ws.send(frame(id))
      await new Promise((r) => setImmediate(r))
    }
    return closedCode(c)
  },
  /** More messages in one frame than maxBatch. */
  'batch-bomb': async (url) => {
    const c = client(url)
    await c.connect()
    c.ws.send(Array.from({ length: 1000 }, (_, i) => JSON.stringify({ id: i + 2, type: 'ping' })).join('\n'))
    return closedCode(c)
  },
  /** A MessagePack array header claiming four billion items. */
  'msgpack-bomb': async (url) => {
    const c = client(url, 'msgpack')
    await c.connect()
    c.ws.send(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]), { binary: true })
    return closedCode(c)
  },
  /** A connection that never sends its connect command. */
  'no-connect': async (url) => {
    const c = client(url)
    await c.opened()
    return closedCode(c)
  },
  /** Half a frame, then silence: the node must not wait for the rest forever. */
  'stalled-frame': async (url) => {
    const c = client(url)
    await c.connect()
    c.answerPings = false
    tcpOf(c).write(maskedFrame(0x1, Buffer.from('{"id":2,"type":"ping"}')).subarray(0, 8))
    return closedCode(c)
  },
  /** Not HTTP at all on the WebSocket port. */
  'not-http': (_url, port) =>
    new Promise((resolve) => {
      let got = ''
      const s = tcpConnect({ port, host: '127.0.0.1' }, () => s.write(Buffer.concat([randomBytes(32), Buffer.from('\r\n\r\n')])))
      const timer = setTimeout(() => {
        s.destroy()
        resolve('hung')
      }, ATTACK_TIMEOUT_MS)
      s.on('data', (d: Buffer) => (got += d.toString('latin1')))
      s.on('error', () => {})
      s.on('close', () => {
        clearTimeout(timer)
        const m = /^HTTP\/1\.1 (\d{3})/.exec(got)
        resolve(m === null ? 'closed without a response' : `http ${m[1]}`)
      })
    }),
}

async function run(m: HostileRun): Promise<void> {
  const outcomes: Outcomes = {}
  const names = Object.keys(ATTACKS)
  const deadline = performance.now() + m.durationMs
  let attacks = 0
  await Promise.all(
    Array.from({ length: m.concurrency }, async (_, k) => {
      for (let i = k; performance.now() < deadline; i++) {
        const name = names[i % names.length] as string
        let outcome: string
        try {
          outcome = await (ATTACKS[name] as Attack)(m.url, m.port)
        } catch (err) {
          outcome = `threw: ${err instanceof Error ? err.message : String(err)}`
        }
        attacks++
        const byOutcome = (outcomes[name] ??= {})
        byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1
      }
    }),
  )
  process.send?.({ type: 'done', outcomes, attacks } satisfies HostileMessage)
}

process.on('message', (raw: unknown) => {
  const m = raw as HostileRun
  if (m.type !== 'run') return
  run(m).catch((err: unknown) => process.send?.({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies HostileMessage))
})
process.on('disconnect', () => process.exit(0))
