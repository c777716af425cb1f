import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface BackendCall {
  path: string
  body: Record<string, unknown>
  raw: string
  headers: IncomingHttpHeaders
}

/** What a test backend answers a call with: a JSON body (status 200), or a hand-written response. */
export type Answer = object | ((res: ServerResponse) => void)
export type Handler = (call: BackendCall) => Answer | Promise<Answer>

/**
 * A real HTTP backend on 127.0.0.1: every POST is recorded in `calls` and answered by the handler
 * of its path (`/connect`...). `stop()` closes it (connections refused), `start()` brings it back
 * on the same port: a backend killed and restarted.
 */
export class TestBackend {
  readonly calls: BackendCall[] = []
  handlers: Record<string, Handler> = {}
  port = 0
  #server: Server | undefined

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      let raw = ''
      req.setEncoding('utf8')
      req.on('data', (c: string) => (raw += c))
      req.on('end', () => {
        const path = req.url ?? '/'
        let body: Record<string, unknown> = {}
        try {
          body = JSON.parse(raw) as Record<string, unknown>
        } catch {}
        const call: BackendCall = { path, body, raw, headers: req.headers }
        this.calls.push(call)
        const handler = this.handlers[path]
        Promise.resolve(handler === undefined ? { error: { code: 104, message: 'no handler' } } : handler(call)).then((answer) => {
          if (typeof answer === 'function') answer(res)
          else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer))
        }, () => res.writeHead(500).end())
      })
    })
    server.keepAliveTimeout = 60_000
    server.listen(this.port, '127.0.0.1')
    await once(server, 'listening')
    this.port = (server.address() as AddressInfo).port
    this.#server = server
    return this
  }

  async stop(): Promise<void> {
    const s = this.#server
    if (s === undefined) return
    this.#server = undefined
    s.closeAllConnections()
    await new Promise<void>((r) => s.close(() => r()))
  }

  callsTo(path: string): BackendCall[] {
    return this.calls.filter((c) => c.path === path)
  }
}
