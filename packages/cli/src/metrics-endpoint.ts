import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Holdfast } from '@holdfast/server'
import { createApiKeyCheck } from '@holdfast/server/api'
import { guardHttpServer, httpServerOptions, type HttpGuardOptions } from '@holdfast/server/internal'
import type { MetricsAuth } from './config.js'


export interface MetricsAnswer {
  status: number
  headers: Record<string, string>
  body: string
}

const JSON_TYPE = 'application/json; charset=utf-8'

/**
 * One answer to `GET /metrics` for both places it is served (the main app and `--metrics-port`):
 * the Prometheus text, or 401 in the API's error shape when a key is required and not given.
 * Prometheus sends the key with `authorization: { type: apikey, credentials: <key> }`.
 */
export function metricsAnswerer(holdfast: Holdfast, auth: MetricsAuth, apiKey: string | undefined): (authorization: string | undefined) => Promise<MetricsAnswer> {
  let check: ((header: string | undefined) => string) | undefined
  if (auth === 'apikey') {
    if (apiKey === undefined) throw new TypeError('metricsAuth "apikey" needs an API key (--api-key)')
    check = createApiKeyCheck(apiKey)
  }
  return async (authorization) => {
    if (check !== undefined && check(authorization) !== 'ok') {
      const message = authorization === undefined ? 'an Authorization: apikey <key> header is required' : 'invalid API key'
      return { status: 401, headers: { 'content-type': JSON_TYPE, 'www-authenticate': 'apikey' }, body: JSON.stringify({ error: { code: 'unauthorized', message } }) }
    }
    return { status: 200, headers: { 'content-type': holdfast.metrics.contentType }, body: await holdfast.metricsText() }
  }
}

export interface MetricsListener {
  port: number
  close(): Promise<void>
}

/**
 * `--metrics-port`: `/metrics` on a listener of its own, so that the public port never shows it
 * and a firewall rule or a Kubernetes port can open it to the scraper only. Plain node:http with
 * the same limits as the main port; every other path is 404.
 */
export async function startMetricsListener(opts: {
  holdfast: Holdfast
  host: string
  port: number
  auth: MetricsAuth
  apiKey: string | undefined
  http?: HttpGuardOptions
}): Promise<MetricsListener> {
  const answer = metricsAnswerer(opts.holdfast, opts.auth, opts.apiKey)
  const server: Server = createServer(httpServerOptions(opts.http), (req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      const body = JSON.stringify({ error: { code: 'not_found', message: 'this listener serves GET /metrics only' } })
      res.writeHead(404, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) }).end(body)
      return
    }
    answer(req.headers.authorization).then(
      (a) => res.writeHead(a.status, { ...a.headers, 'x-content-type-options': 'nosniff' }).end(req.method === 'HEAD' ? undefined : a.body),
      () => res.writeHead(500, { 'content-type': JSON_TYPE }).end(JSON.stringify({ error: { code: 'internal', message: 'internal error' } })),
    )
  })
  guardHttpServer(server, opts.http)
  server.listen(opts.port, opts.host)
  // once() rejects on an 'error' event (EADDRINUSE...), which the caller turns into a usage error.
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
