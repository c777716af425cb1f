/**
 * The Redis engine lives on its own subpath (`@holdfast/server/redis`): an app on the memory
 * engine, and `holdfast serve --engine memory`, must never load a Redis client (ioredis) or the
 * circuit breaker (opossum). Each case runs in a child process and lists the CommonJS modules it
 * loaded (ESM imports of CommonJS packages go through the same module cache).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const HEAVY = /[\\/]node_modules[\\/](ioredis|opossum)[\\/]/

/** A preload that writes the module cache's keys to `file` when the process exits. */
function recorder(file: string): string {
  const code = `import { createRequire } from 'node:module'; import { writeFileSync } from 'node:fs';
const cache = createRequire(${JSON.stringify(join(ROOT, 'package.json'))}).cache;
process.on('exit', () => writeFileSync(${JSON.stringify(file)}, JSON.stringify(Object.keys(cache))));`
  return `data:text/javascript,${encodeURIComponent(code)}`
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
  loaded: string[]
}

/** Run node with the workspace sources, the recorder, and `args`; kill it after `ms`. */
function run(args: string[], opts: { stdin?: string; untilLine?: RegExp; ms?: number } = {}): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'hf-subpath-'))
  const file = join(dir, 'loaded.json')
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HOLDFAST_') && k !== 'NODE_ENV') env[k] = v
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', '--import', recorder(file), ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
    // A server: once it listens, ask it to drain and exit (which runs the recorder).
    if (opts.untilLine?.test(stdout) === true) child.kill('SIGTERM')
  })
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
  })
  const ms = opts.ms ?? 60_000
  return new Promise<Run>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`timed out after ${ms} ms: ${args.join(' ')}; stderr: ${stderr.slice(-1000)}`))
    }, ms)
    child.on('exit', (code) => {
      clearTimeout(timer)
      let loaded: string[] = []
      try {
        loaded = JSON.parse(readFileSync(file, 'utf8')) as string[]
      } catch {
        // No file: the process died before its exit handler; the assertions below say so.
      }
      rmSync(dir, { recursive: true, force: true })
      resolve({ code, stdout, stderr, loaded })
    })
  })
}

function heavy(r: Run): string[] {
  return r.loaded.filter((f) => HEAVY.test(f))
}

describe('@holdfast/server loads the Redis engine only from its subpath', () => {
  it("import('@holdfast/server') and a memory-engine gateway load neither ioredis nor opossum", async () => {
    const script = `const { createHoldfast } = await import('@holdfast/server')
const hf = createHoldfast({ logger: false })
await hf.ready()
await hf.publish('news', { hello: 1 })
await hf.close({ drainMs: 0 })`
    const r = await run(['--input-type=module', '-e', script])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.loaded.length > 0, 'the recorder listed the loaded modules')
    assert.deepEqual(heavy(r), [])
  })

  it("import('@holdfast/server/redis') does load them (the check above is not vacuous)", async () => {
    const r = await run(['--input-type=module', '-e', "const { RedisEngine } = await import('@holdfast/server/redis'); if (typeof RedisEngine !== 'function') process.exit(3)"])
    assert.equal(r.code, 0, r.stderr)
    const names = new Set(heavy(r).map((f) => (HEAVY.exec(f) as RegExpExecArray)[1]))
    assert.deepEqual([...names].sort(), ['ioredis', 'opossum'])
  })

  it('holdfast serve --engine memory serves and exits without loading them', async () => {
    const r = await run(['packages/cli/src/bin.ts', 'serve', '--engine', 'memory', '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', '--drain-ms', '0'], {
      untilLine: /^holdfast listening on /m,
    })
    assert.match(r.stdout, /engine=memory/)
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.loaded.some((f) => /[\\/]node_modules[\\/]fastify[\\/]/.test(f)), 'the server really started (fastify loaded)')
    assert.deepEqual(heavy(r), [])
  })
})
