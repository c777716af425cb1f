/**
 * A private nginx for a test: the deploy/nginx template rendered by deploy/nginx/render.sh (the
 * very file an operator would use), wrapped in a minimal main config whose pid file, logs and
 * temp paths live in a temp dir, listening on a free 127.0.0.1 port, run in the foreground as a
 * child of the test (`daemon off`). The machine's own nginx and its config are never touched.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { promisify } from 'node:util'
import { ROOT } from '../../packages/cli/test/helpers.js'
import { NGINX, until } from './fleet.js'

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => (addr !== null && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** Render deploy/nginx/holdfast.conf.template with the operator's script. */
export async function renderSiteConfig(listen: string, upstreams: string[], extra: string[] = []): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [join(ROOT, 'deploy/nginx/render.sh'), '--listen', listen, ...extra, ...upstreams], { timeout: 10_000 })
  return stdout
}

export class Nginx {
  readonly port: number
  readonly #dir: string
  readonly #child: ChildProcess
  readonly #exited: Promise<void>

  private constructor(port: number, dir: string, child: ChildProcess) {
    this.port = port
    this.#dir = dir
    this.#child = child
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()))
  }

  /** Start nginx in front of `upstreams` (`127.0.0.1:PORT`); stopped after the test. */
  static async start(t: TestContext, upstreams: string[]): Promise<Nginx> {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-nginx-'))
    const port = await freePort()
    writeFileSync(join(dir, 'holdfast.conf'), await renderSiteConfig(`127.0.0.1:${port}`, upstreams))
    writeFileSync(join(dir, 'nginx.conf'), mainConfig(dir))
    // -p: relative paths resolve in the temp dir; -e: the startup error log too (before the
    // config is read, nginx would otherwise open the system one).
    const child = spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
    const nginx = new Nginx(port, dir, child)
    t.after(() => nginx.close())
    let exited = false
    void nginx.#exited.then(() => (exited = true))
    await until(
      `nginx to listen on ${port}`,
      async () => {
        if (exited) throw new Error(`nginx exited: ${output}\n${nginx.errorLog()}`)
        return accepts(port)
      },
      10_000,
    )
    return nginx
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  errorLog(): string {
    try {
      return readFileSync(join(this.#dir, 'error.log'), 'utf8')
    } catch {
      return ''
    }
  }

  async close(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      // SIGTERM is nginx's fast shutdown: it closes open WebSockets at once.
      this.#child.kill('SIGTERM')
      const killer = setTimeout(() => this.#child.kill('SIGKILL'), 5000)
      await this.#exited
      clearTimeout(killer)
    }
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

function mainConfig(dir: string): string {
  // As root, nginx's workers would run as `nobody`, who cannot use the test's private temp dir.
  const user = process.getuid?.() === 0 ? 'user root;\n' : ''
  return `${user}worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} info;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path ${join(dir, 'client_body')};
    proxy_temp_path ${join(dir, 'proxy')};
    fastcgi_temp_path ${join(dir, 'fastcgi')};
    uwsgi_temp_path ${join(dir, 'uwsgi')};
    scgi_temp_path ${join(dir, 'scgi')};
    include ${join(dir, 'holdfast.conf')};
}
`
}
