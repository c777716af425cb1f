// The second-language client: conformance/python/run.py, written from docs/protocol.md, errors.md,
// cli.md and api.md, run against real `holdfast serve` processes. When the docs and the gateway
// disagree, one of its checks fails, and this test with it.
//
// Servers: the main one (token secret, API key, connect timeout 1.5 s, the default 5 s clock
// tolerance on token expiry, a presence namespace
// `room` and a read-only one), an anonymous one pinging every second with a 3 s pong timeout, and
// conformance/rpc-server.ts for the RPC methods (`serve` registers none).
//
// Needs Python 3 with `websockets` and `msgpack` (Debian: python3-websockets python3-msgpack).
// Without them the test is skipped, except in CI (CI=true), where it fails.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { cleanEnv, runCliToEnd, startServe, within } from '../packages/cli/test/helpers.ts'
import { startRpcServer } from './rpc-server.ts'

const ROOT = new URL('..', import.meta.url).pathname
const RUNNER = join(ROOT, 'conformance/python/run.py')
const SECRET = 'conformance-secret-0123456789abcdef'
const API_KEY = 'conformance-api-key'
const PING_MS = 1000
const PONG_TIMEOUT_MS = 3000

/** The first Python that has the client's two libraries: $HOLDFAST_PYTHON, python3, /usr/bin/python3. */
function findPython(): string | undefined {
  const candidates = [process.env['HOLDFAST_PYTHON'], 'python3', '/usr/bin/python3'].filter((p): p is string => !!p)
  return candidates.find((py) => spawnSync(py, ['-c', 'import websockets, msgpack'], { stdio: 'ignore' }).status === 0)
}

const python = findPython()
const skip =
  python !== undefined || process.env['CI'] === 'true'
    ? false
    : 'no python3 with websockets and msgpack (apt-get install -y python3-websockets python3-msgpack)'

test('the Python client written from the docs passes against holdfast serve', { skip, timeout: 120_000 }, async (t) => {
  assert.ok(python, 'CI must run the conformance client: install python3-websockets and python3-msgpack')
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-conformance-'))
  const mainConfig = join(dir, 'main.json')
  writeFileSync(
    mainConfig,
    JSON.stringify({
      connectTimeoutMs: 1500,
      channels: { namespaces: { room: { presence: true, joinLeave: true }, readonly: { allowPublish: false } } },
    }),
  )
  const pingConfig = join(dir, 'ping.json')
  writeFileSync(pingConfig, JSON.stringify({ pongTimeoutMs: PONG_TIMEOUT_MS }))

  const env = cleanEnv()
  const [main, ping, rpc] = await Promise.all([
    startServe(['--token-secret', SECRET, '--api-key', API_KEY, '--config', mainConfig, '--log-level', 'warn'], env),
    startServe(['--ping-interval', `${PING_MS}ms`, '--config', pingConfig, '--log-level', 'error'], env),
    startRpcServer(),
  ])
  t.after(async () => {
    main.child.kill('SIGKILL')
    ping.child.kill('SIGKILL')
    await rpc.close()
  })
  const minted = await runCliToEnd(['token', '--sub', 'conformance-cli', '--secret', SECRET], env)
  assert.equal(minted.code, 0, minted.stderr)

  const args = [
    RUNNER,
    ['--url', main.wsUrl],
    ['--token-secret', SECRET],
    ['--api-key', API_KEY],
    ['--ping-url', ping.wsUrl],
    ['--ping-ms', String(PING_MS)],
    ['--pong-timeout-ms', String(PONG_TIMEOUT_MS)],
    ['--rpc-url', rpc.url],
    ['--cli-token', minted.stdout.trim()],
  ].flat()
  const run = spawn(python, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  run.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  run.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  const code = await within(
    90_000,
    'the conformance client to finish',
    new Promise<number | null>((resolve) => run.on('exit', (c) => resolve(c))),
  ).finally(() => run.kill('SIGKILL'))

  const summaryLine = out.split('\n').find((l) => l.startsWith('summary '))
  assert.ok(summaryLine, `no summary line; stdout:\n${out}\nstderr:\n${err}`)
  const summary = JSON.parse(summaryLine.slice('summary '.length)) as {
    checks: number
    passed: string[]
    failed: string[]
    pending: string[]
    pendingPassing: string[]
  }
  const notOk = out.split('\n').filter((l) => l.startsWith('FAIL ') || l.startsWith('pending '))
  assert.deepEqual(summary.failed, [], `conformance failures (and pending checks):\n${notOk.join('\n')}\nstderr:\n${err.slice(-3000)}`)
  assert.equal(code, 0, `exit ${code}; stderr:\n${err.slice(-3000)}`)
  assert.equal(err.trim(), '', 'the client wrote to stderr')
  // Every area of the brief is covered, and ran in both codecs where the check is per codec.
  for (const name of [
    'connect_with_token[json]',
    'connect_with_token[msgpack]',
    'connect_with_cli_token',
    'connect_anonymous',
    'connect_without_token_refused[msgpack]',
    'recovery_after_abrupt_disconnect[json]',
    'recovery_after_abrupt_disconnect[msgpack]',
    'idempotent_publish[msgpack]',
    'dedupe_scope_user_and_channel',
    'rpc[msgpack]',
    'rpc_idempotent[json]',
    'presence_and_join_leave[msgpack]',
    'heartbeat_silent_client_closed[json]',
    'bytes_reach_every_codec',
    'bad_frames_close_4007[msgpack]',
    'frame_too_big_closes_1009',
    'rate_limit_abuse_closes_4002',
    'http_answers_of_serve',
  ]) {
    assert.ok(summary.passed.includes(name), `${name} did not pass (pending: ${summary.pending.join(', ')})`)
  }
  assert.ok(summary.checks >= 70, `only ${summary.checks} checks ran`)
  if (summary.pending.length > 0 || summary.pendingPassing.length > 0) {
    t.diagnostic(`pending (PENDING_CORE in conformance/python/harness.py): ${summary.pending.join(', ') || 'none'}`)
    t.diagnostic(`listed as pending but passing: ${summary.pendingPassing.join(', ') || 'none'}`)
  }
})
