// Serves pages that load the client SDK bundled for the browser (esbuild, no Node APIs), for the
// tests that drive real headless Chromium. Page-side code is plain JavaScript text: functions
// compiled by tsx would carry helpers the page lacks.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

/** The SDK as one ES module for the browser, built from the sources. */
export async function clientBundle(entry = '../../src/index.ts'): Promise<string> {
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL(entry, import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    conditions: ['source'],
    logLevel: 'silent',
  })
  return bundle.outputFiles[0]?.text ?? ''
}

export interface Pages {
  /** Base URL, ending in `/`. */
  url: string
  close(): Promise<void>
}

/**
 * An HTTP server on 127.0.0.1 (a secure context for Chromium, so Web Locks exist) that answers
 * `/<name>.js` with the given scripts and any other path with `html(pathAndQuery)`.
 */
export async function servePages(scripts: Record<string, string>, html: (path: string) => string): Promise<Pages> {
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/'
    const script = scripts[path.slice(1)]
    if (script !== undefined) res.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html(path))
  })
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
