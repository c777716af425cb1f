// What a newcomer meets in the first hour, each with the real command: `npx holdfast` in a
// checkout, SIGTERM through `npm run`, help for every command, `holdfast reload` refusing a pid
// that is not a holdfast primary, `npm run test:unit`'s pattern, and what serve's HTTP side and
// logs look like.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { createHoldfast } from '@holdfast/server'
import { buildHttpApp } from '../src/http-app.js'
import { cleanEnv, ROOT, runCli, runCliToEnd, until, within } from './helpers.js'

const SHIM = join(ROOT, 'packages/cli/bin/holdfast.mjs')

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('the command in a checkout', () => {
  test('package.json\'s bin is the committed shim, which runs the sources when dist/ is not built', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'packages/cli/package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] }
    // The link npm makes at install must point at a file that exists before any build.
    assert.equal(pkg.bin['holdfast'], './bin/holdfast.mjs')
    assert.ok(pkg.files.includes('bin'))
    const r = spawnSync(process.execPath, [SHIM, '--version'], { cwd: ROOT, env: cleanEnv(), encoding: 'utf8', timeout: 30_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/)
  })

  test('SIGTERM to `npm run dev` stops the gateway (the script execs it), and so does `npm start`\'s', async (t) => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
    assert.match(scripts['start'] ?? '', /^exec node /)
    const npm = spawn('npm', ['run', 'dev', '--', '--port', '0', '--log-level', 'warn'], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    t.after(() => npm.kill('SIGKILL'))
    let out = ''
    npm.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    await until('the listening line', () => /holdfast listening on (http:\/\/\S+)/.test(out), 60_000)
    const url = /holdfast listening on (http:\/\/\S+)/.exec(out)?.[1] as string
    assert.equal((await fetch(`${url}/healthz`)).status, 200)
    npm.kill('SIGTERM')
    await within(20_000, 'npm to exit', new Promise((r) => npm.once('exit', r)))
    // Nothing answers any more: the gateway drained and exited, it was not left orphaned.
    await until('the gateway to stop listening', async () => fetch(`${url}/healthz`).then(() => false, () => true), 20_000)
  })

  test('help for every command: `holdfast help X` and `holdfast X --help`', async () => {
    for (const cmd of ['serve', 'token', 'reload', 'bench', 'chaos']) {
      const a = await runCliToEnd(['help', cmd])
      assert.equal(a.code, 0, `help ${cmd}: ${a.stderr}`)
      assert.match(a.stdout, new RegExp(`^Usage: holdfast ${cmd} `), cmd)
      const b = await runCliToEnd([cmd, '--help'])
      assert.equal(b.code, 0, `${cmd} --help: ${b.stderr}`)
      assert.equal(b.stdout, a.stdout)
    }
    const main = await runCliToEnd(['--help'])
    for (const cmd of ['serve', 'token', 'reload', 'bench', 'chaos']) assert.match(main.stdout, new RegExp(`^  ${cmd} `, 'm'))
  })
})

describe('holdfast reload', () => {
  test('refuses a pid file that names a process other than a holdfast primary, and signals nothing', async (t) => {
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' })
    t.after(() => sleeper.kill('SIGKILL'))
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-reload-'))
    const pidFile = join(dir, 'holdfast.pid')
    writeFileSync(pidFile, `${sleeper.pid}\n`)
    const r = await runCliToEnd(['reload', '--pid-file', pidFile])
    assert.equal(r.code, 2)
    assert.match(r.stderr, new RegExp(`^holdfast: process ${sleeper.pid} from .* is not a holdfast primary: .*holdfast\\.pid\\.status is missing .*nothing was signalled`))
    assert.equal(alive(sleeper.pid as number), true, 'the unrelated process was not signalled')

    // A status file from another process (a pid file copied around, a reused pid) is refused too.
    writeFileSync(`${pidFile}.status`, JSON.stringify({ holdfast: 'primary', pid: 1, startTicks: null, workers: 2, reloading: false, reloads: 0, last: null }))
    const other = await runCliToEnd(['reload', '--pid-file', pidFile])
    assert.equal(other.code, 2)
    assert.match(other.stderr, /names process 1/)
    assert.equal(alive(sleeper.pid as number), true)
  })

  test('a single-process serve (no --workers) is not a reload target: refused, not killed by SIGHUP', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-reload-'))
    const pidFile = join(dir, 'serve.pid')
    const serve = runCli(['serve', '--port', '0', '--pid-file', pidFile, '--log-level', 'warn'])
    t.after(() => serve.child.kill('SIGKILL'))
    await serve.waitForLine(/^holdfast listening on /)
    writeFileSync(pidFile, `${serve.child.pid}\n`)
    const r = await runCliToEnd(['reload', '--pid-file', pidFile])
    assert.equal(r.code, 2, r.stdout)
    assert.equal(alive(serve.child.pid as number), true)
  })
})

describe('npm run test:unit', () => {
  test('--pattern selects files by glob', () => {
    const list = (...args: string[]): string[] =>
      spawnSync(process.execPath, [join(ROOT, 'scripts/run-tests.mjs'), ...args, '--list'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim().split('\n')
    const unit = list('--pattern', 'packages/*/test/**/*.test.ts')
    assert.ok(unit.length > 20)
    assert.ok(unit.every((f) => /^packages\/[^/]+\/test\/.*\.test\.ts$/.test(f)), unit.join(','))
    assert.ok(unit.includes('packages/cli/test/first-hour.test.ts'))
    assert.ok(list().some((f) => f.startsWith('test/')), 'without a pattern, the top-level suites too')
    assert.deepEqual(list('--pattern=packages/cli/test/first-*.test.ts'), ['packages/cli/test/first-hour.test.ts'])
  })
})

describe('what serve answers and logs', () => {
  test('GET /ws is 426 and GET /api/publish is 405, both in the API\'s error shape; /api without a key is 404', async (t) => {
    const holdfast = createHoldfast({ logger: false })
    const withApi = await buildHttpApp({ holdfast, logger: false, apiKey: 'some-api-key-123' })
    const noApi = await buildHttpApp({ holdfast, logger: false })
    t.after(async () => {
      await withApi.close()
      await noApi.close()
      await holdfast.close({ drainMs: 0 })
    })
    const ws = await withApi.inject('/ws')
    assert.equal(ws.statusCode, 426)
    assert.equal(ws.headers['upgrade'], 'websocket')
    assert.deepEqual(ws.json(), { error: { code: 'bad_request', message: '/ws is the WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)' } })
    const get = await withApi.inject('/api/publish')
    assert.equal(get.statusCode, 405)
    assert.equal(get.headers['allow'], 'POST')
    assert.deepEqual(get.json(), { error: { code: 'bad_request', message: 'server API methods are called with POST: POST /api/publish' } })
    // The plugin's own GET routes still win.
    assert.equal((await withApi.inject('/api/openapi.json')).statusCode, 200)
    const off = await noApi.inject({ method: 'POST', url: '/api/publish', payload: {} })
    assert.equal(off.statusCode, 404)
    assert.equal(off.json().error.code, 'method_not_found')
    const missing = await noApi.inject('/nothing-here')
    assert.equal(missing.statusCode, 404)
    assert.deepEqual(missing.json(), { error: { code: 'not_found', message: 'nothing at GET /nothing-here' } })
  })

  test('logs: JSON lines when piped, pretty with --log-format pretty; page files at debug only; the no-auth warning once', async (t) => {
    const json = runCli(['serve', '--port', '0'])
    t.after(() => json.child.kill('SIGKILL'))
    const { 1: url } = (await json.waitForLine(/^holdfast listening on (http:\/\/\S+)/)) as unknown as [string, string]
    for (const path of ['/', '/demo.css', '/healthz']) assert.equal((await fetch(`${url}${path}`)).status, 200, path)
    assert.equal((await fetch(`${url}/ws`)).status, 426)
    await until('the /ws request line', () => json.stdout().includes('"url":"/ws"'), 5000)
    const lines = json.stdout().split('\n').filter((l) => l.startsWith('{'))
    for (const l of lines) JSON.parse(l)
    assert.ok(!lines.some((l) => /"url":"\/(demo\.css|healthz)?"/.test(l)), 'page files and probes are not logged at info')
    assert.equal((json.stdout() + json.stderr()).split('NO AUTHENTICATION').length - 1, 1, 'the no-auth warning once')
    assert.doesNotMatch(json.stdout(), /engine ready again/)

    const pretty = runCli(['serve', '--port', '0', '--log-format', 'pretty'])
    t.after(() => pretty.child.kill('SIGKILL'))
    await pretty.waitForLine(/^holdfast listening on /)
    await until('a pretty log line', () => /\bINFO\b.*holdfast started/.test(pretty.stdout()), 5000)
    assert.ok(!pretty.stdout().split('\n').some((l) => l.startsWith('{"level"')), 'no JSON lines')
  })
})
