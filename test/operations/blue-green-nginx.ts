/**
 * A private nginx for the blue-green test: deploy/blue-green/holdfast-blue-green.conf.template as
 * rendered by deploy/blue-green/render.sh (the operator's own script), wrapped in a minimal main
 * config whose pid file, logs and temp paths live in a temp dir, run in the foreground as a child
 * of the test. `switch()` re-renders the site file and runs `nginx -s reload` against this nginx's
 * pid file, exactly as an operator would; the machine's own nginx is never touched.
 * (test/multinode/nginx.ts does the same for deploy/nginx; this variant adds the reload.)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { promisify } from 'node:util'
import { ROOT } from '../../packages/cli/test/helpers.js'
import { childPids, until } from './cluster.js'

const run = promisify(execFile)
export const NGINX = process.env['HOLDFAST_NGINX'] ?? '/usr/sbin/nginx'

export interface ColorPlan {
  live: 'blue' | 'green'
  /** Percentage of new connections to the other color. @default 0 */
  canary?: number
  blue: string[]
  green: string[]
}

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

/** Render the blue-green template with deploy/blue-green/render.sh. */
export async function renderBlueGreen(listen: string, plan: ColorPlan): Promise<string> {
  const args = [join(ROOT, 'deploy/blue-green/render.sh'), '--listen', listen, '--live', plan.live, '--canary', String(plan.canary ?? 0)]
  for (const s of plan.blue) args.push('--blue', s)
  for (const s of plan.green) args.push('--green', s)
  const { stdout } = await run('bash', args, { timeout: 10_000 })
  return stdout
}

export class BlueGreenNginx {
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

  static async start(t: TestContext, plan: ColorPlan): Promise<BlueGreenNginx> {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-bluegreen-'))
    const port = await freePort()
    writeFileSync(join(dir, 'holdfast.conf'), await renderBlueGreen(`127.0.0.1:${port}`, plan))
    writeFileSync(join(dir, 'nginx.conf'), mainConfig(dir))
    const child = spawn(NGINX, [...nginxArgs(dir), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
    const nginx = new BlueGreenNginx(port, dir, child)
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

  get pid(): number {
    return this.#child.pid as number
  }

  /** nginx's worker processes (old ones still shutting down after a reload included). */
  workers(): number[] {
    return childPids(this.pid)
  }

  /** Re-render for `plan`, check it (`nginx -t`), and `nginx -s reload` this nginx. */
  async switch(plan: ColorPlan): Promise<void> {
    writeFileSync(join(this.#dir, 'holdfast.conf'), await renderBlueGreen(`127.0.0.1:${this.port}`, plan))
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
      this.#child.kill('SIGTERM')
      const killer = setTimeout(() => this.#child.kill('SIGKILL'), 5000)
      await this.#exited
      clearTimeout(killer)
    }
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

function nginxArgs(dir: string): string[] {
  // -p: relative paths resolve in the temp dir; -e: the startup error log too (before the config
  // is read, nginx would otherwise open the system one).
  return ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')]
}

function mainConfig(dir: string): string {
  // As root, nginx's workers would run as `nobody`, who cannot use the test's private temp dir.
  const user = process.getuid?.() === 0 ? 'user root;\n' : ''
  return `${user}worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} info;
events { worker_connections 4096; }
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
