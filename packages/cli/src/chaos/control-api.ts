import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FaultPatch } from './faults.js'
import type { ChaosProxy } from './proxy.js'

/** Options of `startControlApi()`. */
export interface ControlApiOptions {
  /**
   * Address to bind. The API has no authentication (anyone who reaches it can cut your
   * connections), so it stays on loopback unless you decide otherwise. @default '127.0.0.1'
   */
  host?: string
  /** Port; 0 picks a free one. @default 0 */
  port?: number
}

export interface ControlApi {
  /** e.g. `http://127.0.0.1:8474` */
  readonly url: string
  readonly port: number
  close(): Promise<void>
}

/** A fault patch is a few fields; anything bigger is a mistake or an attack. */
const MAX_BODY = 64 * 1024

type Route = (req: IncomingMessage, body: string) => { status: number; body: unknown }

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      // Keep reading (and discarding) so that the 413 can still be sent on this connection.
      if (size <= MAX_BODY) chunks.push(chunk)
    })
    req.on('end', () => {
      if (size > MAX_BODY) reject(new HttpError(413, `body larger than ${MAX_BODY} bytes`))
      else resolve(Buffer.concat(chunks).toString('utf8'))
    })
    req.on('error', reject)
  })
}

/**
 * Serve a ChaosProxy's faults over HTTP, for tests in another process, shell scripts and demos:
 *
 * - `GET /faults` the current faults; `PUT /faults` a JSON patch (400 naming the bad field)
 * - `POST /heal` clear every fault; `POST /reset` reset every current connection
 * - `POST /pause`, `POST /resume` stop and restart accepting new connections
 * - `GET /stats` connections, bytes each way, resets
 */
export async function startControlApi(proxy: ChaosProxy, options: ControlApiOptions = {}): Promise<ControlApi> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`port must be an integer from 0 to 65535, got ${String(port)}`)

  const routes: Record<string, Partial<Record<string, Route>>> = {
    '/faults': {
      GET: () => ({ status: 200, body: proxy.faults }),
      PUT: (_req, body) => {
        let patch: unknown
        try {
          patch = JSON.parse(body)
        } catch {
          throw new HttpError(400, 'body must be a JSON object, e.g. {"latencyMs": 100}')
        }
        try {
          return { status: 200, body: proxy.setFaults(patch as FaultPatch) }
        } catch (err) {
          if (err instanceof TypeError) throw new HttpError(400, err.message)
          throw err
        }
      },
    },
    '/heal': { POST: () => ({ status: 200, body: proxy.heal() }) },
    '/reset': { POST: () => ({ status: 200, body: { reset: proxy.resetAll() } }) },
    '/pause': {
      POST: () => {
        proxy.pause()
        return { status: 200, body: { accepting: proxy.accepting } }
      },
    },
    '/resume': {
      POST: () => {
        proxy.resume()
        return { status: 200, body: { accepting: proxy.accepting } }
      },
    },
    '/stats': { GET: () => ({ status: 200, body: proxy.stats() }) },
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://control').pathname
    // hasOwn: only our own routes and methods, never an inherited property of the object.
    const methods = Object.hasOwn(routes, path) ? routes[path] : undefined
    if (methods === undefined) {
      send(res, 404, { error: `no such endpoint: ${path}; try GET /faults, PUT /faults, POST /heal, POST /reset, GET /stats` })
      return
    }
    const method = req.method ?? ''
    const route = Object.hasOwn(methods, method) ? methods[method] : undefined
    if (route === undefined) {
      const allow = Object.keys(methods).join(', ')
      send(res, 405, { error: `${method} ${path} is not allowed; use ${allow}` }, { allow })
      return
    }
    readBody(req)
      .then((body) => {
        const out = route(req, body)
        send(res, out.status, out.body)
      })
      .catch((err: unknown) => {
        if (err instanceof HttpError) send(res, err.status, { error: err.message })
        else send(res, 500, { error: err instanceof Error ? err.message : String(err) })
      })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = (server.address() as AddressInfo).port
  const urlHost = host.includes(':') ? `[${host}]` : host
  let closing: Promise<void> | undefined
  return {
    url: `http://${urlHost}:${bound}`,
    port: bound,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Keep-alive connections (fetch keeps them) would hold close() open until they time out.
        server.closeAllConnections()
      })),
  }
}
