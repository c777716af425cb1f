// Targets and clients for the chaos proxy tests: real TCP on 127.0.0.1, port 0, every wait bounded.
import { createHash } from 'node:crypto'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { ChaosProxy, type FaultPatch } from '../src/chaos/index.js'
import { within } from './helpers.js'

export { within }

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

export interface Target {
  port: number
  server: Server
  /** Every socket the target accepted, in order. */
  sockets: Socket[]
  close(): Promise<void>
}

async function listen(server: Server, t: TestContext): Promise<Target> {
  const sockets: Socket[] = []
  server.on('connection', (s) => {
    sockets.push(s)
    // A reset from the proxy is what several tests are about; it must not crash the test process.
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const target: Target = {
    port: (server.address() as AddressInfo).port,
    server,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        if (!server.listening) resolve()
        else server.close(() => resolve())
      }),
  }
  t.after(() => target.close())
  return target
}

/** A server that sends back whatever it receives, and ends when the client ends. */
export function startEcho(t: TestContext): Promise<Target> {
  const server = createServer({ allowHalfOpen: true }, (s) => s.pipe(s))
  return listen(server, t)
}

export interface Sink extends Target {
  /** Chunks as each connection's 'data' events delivered them (index = connection order). */
  chunks: Buffer[][]
  ended: boolean[]
  received(conn?: number): Buffer
  waitForBytes(n: number, ms?: number, conn?: number): Promise<Buffer>
}

/** A server that keeps every chunk it reads and never writes anything. */
export async function startSink(t: TestContext): Promise<Sink> {
  const chunks: Buffer[][] = []
  const ended: boolean[] = []
  const sizes: number[] = []
  const waiters = new Set<() => void>()
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const i = chunks.length
    chunks.push([])
    ended.push(false)
    s.on('data', (d: Buffer) => {
      chunks[i]?.push(d)
      sizes[i] = (sizes[i] ?? 0) + d.length
      for (const w of waiters) w()
    })
    s.on('end', () => {
      ended[i] = true
      for (const w of waiters) w()
    })
  })
  const target = await listen(server, t)
  const received = (conn = 0): Buffer => Buffer.concat(chunks[conn] ?? [])
  const waitForBytes = (n: number, ms = 10_000, conn = 0): Promise<Buffer> =>
    within(
      ms,
      `the sink to receive ${n} bytes`,
      new Promise<Buffer>((resolve) => {
        const check = (): void => {
          // Count first: concatenating on every chunk would be quadratic for large payloads.
          if ((sizes[conn] ?? 0) >= n) {
            waiters.delete(check)
            resolve(received(conn))
          }
        }
        waiters.add(check)
        check()
      }),
    )
  return { ...target, chunks, ended, received, waitForBytes }
}

/** A started proxy in front of `port`, stopped after the test. */
export async function startProxy(t: TestContext, port: number, faults?: FaultPatch, random?: () => number): Promise<ChaosProxy> {
  const proxy = new ChaosProxy({
    target: { host: '127.0.0.1', port },
    ...(faults === undefined ? {} : { faults }),
    ...(random === undefined ? {} : { random }),
  })
  await proxy.start()
  t.after(() => proxy.stop())
  return proxy
}

export interface Client {
  socket: Socket
  /** Everything read so far. */
  data(): Buffer
  waitForBytes(n: number, ms?: number): Promise<Buffer>
  /** Resolves on 'end' (FIN from the proxy). */
  ended: Promise<void>
  /** Resolves with the error code (e.g. ECONNRESET) or null on a clean close. */
  closed: Promise<string | null>
  events: string[]
}

/** A TCP client through the proxy; connected when this resolves. */
export async function connectTo(t: TestContext, port: number): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
  t.after(() => socket.destroy())
  const chunks: Buffer[] = []
  const events: string[] = []
  const waiters = new Set<() => void>()
  let error: string | null = null
  let size = 0
  socket.on('data', (d: Buffer) => {
    chunks.push(d)
    size += d.length
    events.push('data')
    for (const w of waiters) w()
  })
  socket.on('error', (err: NodeJS.ErrnoException) => {
    error = err.code ?? err.message
    events.push(`error:${error}`)
  })
  const ended = new Promise<void>((resolve) =>
    socket.on('end', () => {
      events.push('end')
      resolve()
    }),
  )
  const closed = new Promise<string | null>((resolve) =>
    socket.on('close', () => {
      events.push('close')
      for (const w of waiters) w()
      resolve(error)
    }),
  )
  await within(5_000, 'the client to connect to the proxy', new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  }))
  const data = (): Buffer => Buffer.concat(chunks)
  const waitForBytes = (n: number, ms = 10_000): Promise<Buffer> =>
    within(
      ms,
      `the client to receive ${n} bytes`,
      new Promise<Buffer>((resolve, reject) => {
        const check = (): void => {
          if (size >= n) {
            waiters.delete(check)
            resolve(data())
          } else if (socket.destroyed) {
            waiters.delete(check)
            reject(new Error(`socket closed after ${size} of ${n} bytes (${events.join(', ')})`))
          }
        }
        waiters.add(check)
        check()
      }),
    )
  return { socket, data, waitForBytes, ended, closed, events }
}

/** Connect and wait for the socket to close: resolves with its error code, or null for a clean close. */
export function attempt(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    let code: string | null = null
    socket.on('error', (err: NodeJS.ErrnoException) => (code = err.code ?? err.message))
    socket.on('close', () => resolve(code))
  })
}

/** Resolves when `cond()` holds, polling every few ms; rejects after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  let done = false
  try {
    await within(
      ms,
      what,
      new Promise<void>((resolve) => {
        const tick = (): void => {
          if (done) return
          if (cond()) resolve()
          else timer = setTimeout(tick, 5)
        }
        tick()
      }),
    )
  } finally {
    // The poll must not outlive a timeout, or it would keep the test process busy.
    done = true
    clearTimeout(timer)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
