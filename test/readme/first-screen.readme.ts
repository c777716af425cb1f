// The README's first screen, as a newcomer runs it: a fresh clone, the two commands of its first
// `sh` block as written (install and start; then the test command), probes of `/` and `/healthz`,
// Ctrl-C's signal sent to the npm process, and no gateway left running afterwards.
//
//   npm run test:readme        (a few minutes: a full npm install and build in a fresh clone)
//
// The clone is of the repository's committed HEAD. HOLDFAST_PORT picks a free port instead of
// 8080, the one thing changed from the README's commands (through the environment, as a user may).
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { freePort } from '../support/ports.js'

const ROOT = new URL('../..', import.meta.url).pathname

/** The commands of the README's first sh block, comments stripped: `npm install && npm start`, `npm test`. */
function firstScreen(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const block = /^```sh\n([\s\S]*?)^```/m.exec(readme)
  assert.ok(block?.[1], 'the README has no sh block')
  return block[1]
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l !== '')
}

/** Processes whose command line mentions `dir` (the clone): what could be left running. */
function processesIn(dir: string): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ')
      const cwd = readlinkSync(`/proc/${entry}/cwd`)
      if (cmd.includes(dir) || cwd.startsWith(dir)) out.push({ pid: Number(entry), cmd })
    } catch {
      // gone meanwhile
    }
  }
  return out
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = performance.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

async function get(url: string): Promise<{ status: number; type: string; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() }
  } catch {
    return undefined
  }
}

test('the README first screen: clone, install, start, probe, SIGTERM through npm, test command', { timeout: 15 * 60_000 }, async (t) => {
  const commands = firstScreen()
  assert.deepEqual(commands, ['npm install && npm start', 'npm test'], 'the first screen changed: update this test')
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-readme-'))
  t.after(() => {
    for (const p of processesIn(dir)) process.kill(p.pid, 'SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  const clone = spawnSync('git', ['clone', '--quiet', '--no-hardlinks', ROOT, dir], { encoding: 'utf8' })
  assert.equal(clone.status, 0, clone.stderr)

  const port = await freePort()
  const env: NodeJS.ProcessEnv = { ...process.env, HOLDFAST_PORT: String(port) }
  for (const key of Object.keys(env)) if ((key.startsWith('HOLDFAST_') && key !== 'HOLDFAST_PORT') || key.startsWith('npm_')) delete env[key]
  const [install, start] = (commands[0] as string).split(' && ') as [string, string]
  const installed = spawnSync('sh', ['-c', install], { cwd: dir, env, encoding: 'utf8', timeout: 10 * 60_000 })
  assert.equal(installed.status, 0, `${install} failed:\n${installed.stderr.slice(-3000)}`)
  assert.doesNotMatch(installed.stderr, /EBADENGINE/, 'npm install warns EBADENGINE')

  // `npm start` as the user types it: npm is the process a terminal's Ctrl-C (or a supervisor's SIGTERM) reaches.
  const [cmd, ...args] = start.split(' ') as [string, ...string[]]
  const npm = spawn(cmd, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  npm.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  npm.stderr.setEncoding('utf8').on('data', (d: string) => (out += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm.on('exit', (code, signal) => resolve({ code, signal })))

  const health = await until(`/healthz on port ${port} (output: ${out.slice(-1500)})`, 5 * 60_000, () => get(`http://127.0.0.1:${port}/healthz`))
  assert.equal(health.status, 200)
  assert.deepEqual(JSON.parse(health.body), { status: 'ok' })
  const page = await get(`http://127.0.0.1:${port}/`)
  assert.equal(page?.status, 200)
  assert.match(page.type, /text\/html/)
  assert.match(out, new RegExp(`holdfast listening on http://127\\.0\\.0\\.1:${port} `))
  const gateways = processesIn(dir).filter((p) => p.cmd.includes('packages/cli/dist/bin.js'))
  assert.equal(gateways.length, 1, `one gateway process: ${JSON.stringify(gateways)}`)
  const gateway = (gateways[0] as { pid: number }).pid

  npm.kill('SIGTERM')
  const result = await until('npm to exit after SIGTERM', 30_000, () => Promise.race([exited, new Promise<undefined>((r) => setTimeout(r, 100))]))
  assert.ok(result.code === 0 || result.signal === 'SIGTERM' || result.code === 143, `npm exit: ${JSON.stringify(result)}`)
  await until('the gateway to exit', 15_000, () => {
    try {
      process.kill(gateway, 0)
      return undefined
    } catch {
      return true
    }
  })
  assert.deepEqual(processesIn(dir), [], 'processes left running after npm exited')
  assert.equal(await get(`http://127.0.0.1:${port}/healthz`), undefined, 'the port still answers')

  // The test command is there and finds the suite (running all of it is `npm test`'s own CI step).
  const listed = spawnSync('npm', ['test', '--', '--list'], { cwd: dir, env, encoding: 'utf8' })
  assert.equal(listed.status, 0, listed.stderr)
  assert.ok(listed.stdout.split('\n').filter((l) => l.endsWith('.test.ts')).length > 50, listed.stdout.slice(-1000))
})
