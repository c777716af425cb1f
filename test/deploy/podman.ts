/**
 * The root Dockerfile's image as real containers, for the image test and the rolling-update bench:
 * build it (from a local Node base, offline, with the host's npm cache), run it with podman, read
 * its logs, signal it, stop it, and remove it afterwards.
 *
 * podman runs with test/deploy/containers.conf (runc, cgroupfs, explicit ulimits) unless
 * CONTAINERS_CONF is set. HOLDFAST_IMAGE names an image that is already built: the build is skipped.
 */
import { execFile, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { ROOT, within } from '../../packages/cli/test/helpers.js'

export const CONTAINERS_CONF = fileURLToPath(new URL('./containers.conf', import.meta.url))
export const PODMAN = process.env['HOLDFAST_PODMAN'] ?? 'podman'
const BASE_TAG = 'localhost/holdfast-node-base:24'
const IMAGE_TAG = 'localhost/holdfast:ci'

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Run a podman command to its end (bounded); never throws for a non-zero exit. */
export function podman(args: readonly string[], ms = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, CONTAINERS_CONF: process.env['CONTAINERS_CONF'] ?? CONTAINERS_CONF }
    execFile(PODMAN, args, { env, timeout: ms, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(new Error(`podman ${args.join(' ')}: ${err.message}; stderr: ${stderr.slice(-1500)}`))
        return
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr })
    })
  })
}

async function must(args: readonly string[], ms?: number): Promise<string> {
  const r = await podman(args, ms)
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).slice(-3000)}`)
  return r.stdout
}

/** true when podman can run here (the binary exists). */
export function havePodman(): boolean {
  try {
    execFileSync(PODMAN, ['--version'], { stdio: 'ignore', timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

/**
 * Build the image as a user would (`podman build .` of the root Dockerfile), but from a Node base
 * made locally (deploy/docker/node-base.sh) and without network: npm reads the host's npm cache,
 * mounted as an overlay so that the build cannot change it. Returns the image name.
 */
export async function buildImage(log: (line: string) => void = () => {}): Promise<string> {
  const given = process.env['HOLDFAST_IMAGE']
  if (given !== undefined && given !== '') return given
  let started = performance.now()
  await new Promise<void>((resolve, reject) => {
    const env = { ...process.env, CONTAINERS_CONF: process.env['CONTAINERS_CONF'] ?? CONTAINERS_CONF }
    execFile(`${ROOT}deploy/docker/node-base.sh`, ['--tag', BASE_TAG], { env, timeout: 300_000 }, (err, _out, stderr) =>
      err === null ? resolve() : reject(new Error(`node-base.sh failed: ${err.message}; ${stderr.slice(-2000)}`)),
    )
  })
  log(`base image ${BASE_TAG} in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const cache = execFileSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8', timeout: 30_000 }).trim()
  started = performance.now()
  await must(
    [
      'build',
      '--format', 'docker', // HEALTHCHECK is a Docker image field; the OCI format has none
      '--network', 'none',
      '--build-arg', `NODE_IMAGE=${BASE_TAG}`,
      '--build-arg', 'npm_config_cache=/npm-cache',
      '--build-arg', 'npm_config_offline=true',
      '--volume', `${cache}:/npm-cache:O`,
      '--tag', IMAGE_TAG,
      ROOT,
    ],
    600_000,
  )
  log(`image ${IMAGE_TAG} in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  return IMAGE_TAG
}

export interface RunOptions {
  /** `hostPort:containerPort` pairs published on 127.0.0.1 (`-p`). */
  publish?: Array<[number, number]>
  env?: Record<string, string>
  /** Flags after the image name (appended to `holdfast serve --host 0.0.0.0`). */
  args?: string[]
  /** `--network host` instead of a private network (ports are then the host's). */
  hostNetwork?: boolean
  /** Name prefix; a random suffix is added. @default 'holdfast-test' */
  name?: string
}

/** One running container of the image. */
export class Container {
  readonly name: string

  private constructor(name: string) {
    this.name = name
  }

  /**
   * `podman run -d` with the root filesystem read-only and the periodic healthcheck off (it needs
   * systemd timers; `healthcheck()` runs it on demand). Register `remove()` as a cleanup.
   */
  static async run(image: string, opts: RunOptions = {}): Promise<Container> {
    const name = `${opts.name ?? 'holdfast-test'}-${randomBytes(4).toString('hex')}`
    const args = ['run', '-d', '--name', name, '--read-only', '--health-interval', 'disable']
    if (opts.hostNetwork === true) args.push('--network', 'host')
    for (const [host, inner] of opts.publish ?? []) args.push('-p', `127.0.0.1:${host}:${inner}`)
    for (const [k, v] of Object.entries(opts.env ?? {})) args.push('-e', `${k}=${v}`)
    args.push(image, ...(opts.args ?? []))
    await must(args)
    return new Container(name)
  }

  /** Everything the container wrote (stdout and stderr). */
  async logs(): Promise<string> {
    const r = await podman(['logs', this.name])
    return r.stdout + r.stderr
  }

  /** Wait (bounded) until the logs match `re`; returns the match. */
  async waitForLog(re: RegExp, ms: number): Promise<RegExpExecArray> {
    const deadline = performance.now() + ms
    for (;;) {
      const text = await this.logs()
      const m = re.exec(text)
      if (m !== null) return m
      if (performance.now() > deadline) throw new Error(`container ${this.name}: no log line matching ${re} within ${ms} ms; last: ${text.slice(-2000)}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** Parsed pino lines of the logs with this message. */
  async logLines(msg: RegExp): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = []
    for (const line of (await this.logs()).split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        const l = JSON.parse(line) as Record<string, unknown>
        if (typeof l['msg'] === 'string' && msg.test(l['msg'])) out.push(l)
      } catch {
        // A line cut by the read; the next read has it whole.
      }
    }
    return out
  }

  async inspect(format: string): Promise<string> {
    return (await must(['inspect', '--format', format, this.name])).trim()
  }

  /** `podman kill --signal SIG` (PID 1 gets it). */
  async signal(signal: string): Promise<void> {
    await must(['kill', '--signal', signal, this.name])
  }

  /** `podman stop -t grace`: SIGTERM (the image's STOPSIGNAL), SIGKILL after `grace` s. Returns how long it took and the exit code. */
  async stop(graceSeconds: number): Promise<{ ms: number; exitCode: number }> {
    const started = performance.now()
    await must(['stop', '-t', String(graceSeconds), this.name], (graceSeconds + 30) * 1000)
    const ms = performance.now() - started
    return { ms, exitCode: Number(await this.inspect('{{.State.ExitCode}}')) }
  }

  /** The image's HEALTHCHECK, run now: true when healthy. */
  async healthcheck(): Promise<boolean> {
    return (await podman(['healthcheck', 'run', this.name])).code === 0
  }

  async exec(cmd: string[]): Promise<Run> {
    return podman(['exec', this.name, ...cmd])
  }

  /** Wait for the container to exit; its exit code. */
  async wait(ms: number): Promise<number> {
    return Number((await within(ms, `container ${this.name} to exit`, must(['wait', this.name], ms + 5000))).trim())
  }

  async remove(): Promise<void> {
    await podman(['rm', '-f', '-t', '0', this.name]).catch(() => {})
  }
}
