/**
 * A private nginx for a test: a site config rendered by one of the operator's own scripts
 * (deploy/nginx/render.sh, deploy/blue-green/render.sh), wrapped in a minimal main config whose
 * pid file, logs and temp paths live in a temp dir, listening on a free 127.0.0.1 port, run in the
 * foreground as a child of the test (`daemon off`). `reload()` re-renders the site and runs
 * `nginx -s reload` against this nginx's pid file, as an operator would. The machine's own nginx
 * and its config are never touched. The one nginx runner of the multinode and operations tests.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { promisify } from 'node:util'
import { ROOT } from '../../packages/cli/test/helpers.js'
import { accepts, freePort } from '../support/ports.js'
import { childPids } from '../operations/cluster.js'
import { NGINX, until } from './fleet.js'

const run = promisify(execFile)

/** Renders the site config (the `server` and `upstream` blocks) for nginx to listen on `listen` (`127.0.0.1:PORT`). */
export type SiteRenderer = (listen: string) => Promise<string>

/** Render deploy/nginx/holdfast.conf.template with the operator's script. */
export async function renderSiteConfig(listen: string, upstreams: string[], extra: string[] = []): Promise<string> {
  const { stdout } = await run('bash', [join(ROOT, 'deploy/nginx/render.sh'), '--listen', listen, ...extra, ...upstreams], { timeout: 10_000 })
  return stdout
}

/** The command-line flags that point nginx at the config in `dir` and keep everything it writes there. */
export function nginxArgs(dir: string): string[] {
  // -p: relative paths resolve in the temp dir; -e: the startup error log too (before the config
  // is read, nginx would otherwise open the system one).
  return ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')]
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

  /** Start nginx from deploy/nginx in front of `upstreams` (`127.0.0.1:PORT`); stopped after the test. */
  static start(t: Pick<TestContext, 'after'>, upstreams: string[]): Promise<Nginx> {
    return Nginx.serve(t, (listen) => renderSiteConfig(listen, upstreams))
  }

  /** Start nginx with the site `render` gives; stopped after the test. */
  static async serve(t: Pick<TestContext, 'after'>, render: SiteRenderer): Promise<Nginx> {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-nginx-'))
    const port = await freePort()
    writeFileSync(join(dir, 'holdfast.conf'), await render(`127.0.0.1:${port}`))
    writeFileSync(join(dir, 'nginx.conf'), mainConfig(dir))
    const child = spawn(NGINX, [...nginxArgs(dir), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] })
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

  /** The master process. */
  get pid(): number {
    return this.#child.pid as number
  }

  /** nginx's worker processes (old ones still shutting down after a reload included). */
  workers(): number[] {
    return childPids(this.pid)
  }

  /** Re-render the site with `render`, check it (`nginx -t`), and `nginx -s reload` this nginx. */
  async reload(render: SiteRenderer): Promise<void> {
    writeFileSync(join(this.#dir, 'holdfast.conf'), await render(`127.0.0.1:${this.port}`))
    await run(NGINX, [...nginxArgs(this.#dir), '-t'], { timeout: 10_000 })
    // -s reload reads the master's pid from the pid file named in our config: this nginx, no other.
    await run(NGINX, [...nginxArgs(this.#dir), '-s', 'reload'], { timeout: 10_000 })
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
  // 10000: room for the clients of the blue-green test and the container rollout (2,000 clients,
  // two connections each), which an old worker keeps while a new one serves.
  return `${user}worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} info;
events { worker_connections 10000; }
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
