import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { jwtVerify } from 'jose'
import { CliError } from '../src/cli-error.js'
import { SETTINGS, envName, type SettingName } from '../src/config.js'
import { resolveTokenRequest } from '../src/token.js'
import { cleanEnv, runCliToEnd } from './helpers.js'

const SECRET = 'cli-test-secret-0123456789abcdef0123'

function throwsCli(fn: () => unknown, fragment: string): void {
  assert.throws(fn, (err: unknown) => err instanceof CliError && err.exitCode === 2 && err.message.includes(fragment))
}

describe('resolveTokenRequest', () => {
  test('secret from --secret beats HOLDFAST_TOKEN_SECRET', () => {
    assert.equal(resolveTokenRequest(['--sub', 'a', '--secret', 'flag'], { HOLDFAST_TOKEN_SECRET: 'env' }).secret, 'flag')
    assert.equal(resolveTokenRequest(['--sub', 'a'], { HOLDFAST_TOKEN_SECRET: 'env' }).secret, 'env')
  })

  test('no secret, no sub', () => {
    throwsCli(() => resolveTokenRequest(['--sub', 'a'], {}), 'HOLDFAST_TOKEN_SECRET')
    throwsCli(() => resolveTokenRequest(['--sub', 'a'], { HOLDFAST_TOKEN_SECRET: '' }), '--secret')
    throwsCli(() => resolveTokenRequest(['--secret', 's'], {}), '--sub')
  })

  test('ttl: default 1h, units, bare seconds, garbage', () => {
    const base = ['--sub', 'a', '--secret', 's']
    assert.equal(resolveTokenRequest(base, {}).ttlSeconds, 3600)
    assert.equal(resolveTokenRequest([...base, '--ttl', '30m'], {}).ttlSeconds, 1800)
    assert.equal(resolveTokenRequest([...base, '--ttl', '90'], {}).ttlSeconds, 90)
    throwsCli(() => resolveTokenRequest([...base, '--ttl', 'forever'], {}), '--ttl')
    throwsCli(() => resolveTokenRequest([...base, '--ttl', '10ms'], {}), 'at least 1s')
  })

  test('info and channels', () => {
    const base = ['--sub', 'a', '--secret', 's']
    const r = resolveTokenRequest([...base, '--info', '{"name":"Alice"}', '--channels', 'chat:lobby, user#a'], {})
    assert.deepEqual(r.info, { name: 'Alice' })
    assert.deepEqual(r.channels, ['chat:lobby', 'user#a'])
    throwsCli(() => resolveTokenRequest([...base, '--info', '{name'], {}), '--info')
    throwsCli(() => resolveTokenRequest([...base, '--channels', 'a,,b'], {}), '--channels')
    throwsCli(() => resolveTokenRequest([...base, '--user', 'x'], {}), '--user')
  })
})

describe('holdfast (process)', { concurrency: true }, () => {
  test('token prints a verifiable HS256 token and nothing else', async () => {
    const r = await runCliToEnd(['token', '--sub', 'alice', '--secret', SECRET, '--ttl', '2h', '--info', '{"name":"Alice"}', '--channels', 'chat:lobby'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.split('\n').filter(Boolean).length, 1)
    const { payload, protectedHeader } = await jwtVerify(r.stdout.trim(), new TextEncoder().encode(SECRET))
    assert.equal(protectedHeader.alg, 'HS256')
    assert.equal(payload.sub, 'alice')
    assert.deepEqual(payload['info'], { name: 'Alice' })
    assert.deepEqual(payload['channels'], ['chat:lobby'])
    assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 7200)
  })

  test('token without a secret exits 2', async () => {
    const r = await runCliToEnd(['token', '--sub', 'alice'], cleanEnv())
    assert.equal(r.code, 2)
    assert.match(r.stderr, /no secret/)
    assert.equal(r.stdout, '')
  })

  test('--version prints the package version', async () => {
    const r = await runCliToEnd(['--version'])
    assert.equal(r.code, 0)
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    assert.equal(r.stdout.trim(), pkg.version)
  })

  test('--help and help serve; serve help lists every flag with its env var', async () => {
    const main = await runCliToEnd(['--help'])
    assert.equal(main.code, 0)
    assert.match(main.stdout, /Usage: holdfast <command>/)
    const serve = await runCliToEnd(['help', 'serve'])
    assert.equal(serve.code, 0)
    for (const name of Object.keys(SETTINGS) as SettingName[]) {
      assert.ok(serve.stdout.includes(`--${SETTINGS[name].flag} `), SETTINGS[name].flag)
      assert.ok(serve.stdout.includes(envName(name)), envName(name))
    }
    const viaFlag = await runCliToEnd(['serve', '--help'])
    assert.equal(viaFlag.stdout, serve.stdout)
  })

  test('unknown command and no command: usage, exit 2', async () => {
    const unknown = await runCliToEnd(['frobnicate'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown command "frobnicate"/)
    assert.match(unknown.stderr, /Usage: holdfast/)
    const none = await runCliToEnd([])
    assert.equal(none.code, 2)
    assert.match(none.stderr, /Usage: holdfast/)
  })

  test('a server option the gateway rejects is a usage error naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-cli-'))
    const file = join(dir, 'holdfast.json')
    writeFileSync(file, JSON.stringify({ maxPayload: -1 }))
    const r = await runCliToEnd(['serve', '--port', '0', '--config', file], cleanEnv())
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /invalid configuration.*maxPayload/)
  })
})
