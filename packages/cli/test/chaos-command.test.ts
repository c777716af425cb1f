import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { resolveChaosConfig } from '../src/chaos-command.js'
import { CliError } from '../src/cli-error.js'
import { connectTo, startEcho, within } from './chaos-helpers.js'
import { cleanEnv, runCli, runCliToEnd } from './helpers.js'

function throwsCli(fn: () => unknown, fragment: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    if (!(err instanceof CliError) || err.exitCode !== 2) return false
    return typeof fragment === 'string' ? err.message.includes(fragment) : fragment.test(err.message)
  })
}

const BASE = ['--listen', '9000', '--target', '127.0.0.1:8080']

describe('resolveChaosConfig', () => {
  test('listen, target, control and faults from flags', () => {
    const c = resolveChaosConfig(
      [...BASE, '--control', '0', '--latency', '100', '--jitter', '20ms', '--bandwidth', '50000', '--reset-rate', '0.01', '--drop-rate', '.5', '--slice', '16'],
      {},
    )
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 9000 })
    assert.deepEqual(c.target, { host: '127.0.0.1', port: 8080 })
    assert.equal(c.control, 0)
    assert.deepEqual(c.faults, {
      latencyMs: 100,
      jitterMs: 20,
      bandwidthBytesPerSec: 50_000,
      sliceBytes: 16,
      resetProbability: 0.01,
      dropProbability: 0.5,
    })
    assert.equal(resolveChaosConfig(BASE, {}).control, undefined)
    assert.deepEqual(resolveChaosConfig(['--listen', '127.0.0.2:0', '--target', '[::1]:80'], {}).listen, { host: '127.0.0.2', port: 0 })
    assert.deepEqual(resolveChaosConfig(['--listen', '1', '--target', '[::1]:80'], {}).target, { host: '::1', port: 80 })
    assert.deepEqual(resolveChaosConfig(['--listen', '1', '--target', 'localhost:80'], {}).target, { host: 'localhost', port: 80 })
  })

  test('HOLDFAST_* variables; a flag beats the variable; empty counts as unset', () => {
    const env = { HOLDFAST_LISTEN: '7000', HOLDFAST_TARGET: '127.0.0.1:7001', HOLDFAST_LATENCY: '1s', HOLDFAST_CONTROL: '', HOLDFAST_RESET_RATE: '0.2' }
    const c = resolveChaosConfig([], env)
    assert.equal(c.listen.port, 7000)
    assert.equal(c.target.port, 7001)
    assert.equal(c.faults.latencyMs, 1000)
    assert.equal(c.faults.resetProbability, 0.2)
    assert.equal(c.control, undefined)
    assert.equal(resolveChaosConfig(['--latency', '5'], env).faults.latencyMs, 5)
    throwsCli(() => resolveChaosConfig([], { ...env, HOLDFAST_SLICE: 'big' }), 'HOLDFAST_SLICE must be a whole number')
  })

  test('errors name the flag', () => {
    throwsCli(() => resolveChaosConfig(['--target', '127.0.0.1:1'], {}), '--listen is required (or HOLDFAST_LISTEN)')
    throwsCli(() => resolveChaosConfig(['--listen', '1'], {}), '--target is required')
    throwsCli(() => resolveChaosConfig(['--listen', '1', '--target', '8080'], {}), '--target must be HOST:PORT')
    throwsCli(() => resolveChaosConfig(['--listen', '1', '--target', '127.0.0.1:0'], {}), '--target must be a port from 1 to 65535')
    throwsCli(() => resolveChaosConfig(['--listen', '70000', '--target', '127.0.0.1:1'], {}), '--listen must be a port')
    throwsCli(() => resolveChaosConfig([...BASE, '--control', 'x'], {}), '--control must be a port')
    throwsCli(() => resolveChaosConfig([...BASE, '--latency', 'slow'], {}), '--latency must be a duration')
    throwsCli(() => resolveChaosConfig([...BASE, '--jitter', '11m'], {}), '--jitter must be at most 10m')
    throwsCli(() => resolveChaosConfig([...BASE, '--reset-rate', '1.5'], {}), '--reset-rate must be a probability from 0 to 1')
    throwsCli(() => resolveChaosConfig([...BASE, '--drop-rate=-1'], {}), '--drop-rate must be a probability')
    throwsCli(() => resolveChaosConfig([...BASE, '--bandwidth', '1.5'], {}), '--bandwidth must be a whole number')
    throwsCli(() => resolveChaosConfig([...BASE, '--latncy', '5'], {}), "Unknown option '--latncy'")
  })

  test('a target off this machine is refused, saying why, unless --allow-remote', () => {
    for (const target of ['10.1.2.3:80', 'example.com:443', '0.0.0.0:80', '[2001:db8::1]:80']) {
      throwsCli(() => resolveChaosConfig(['--listen', '1', '--target', target], {}), /not a loopback address\. holdfast chaos breaks the network on purpose.*--allow-remote/s)
    }
    assert.equal(resolveChaosConfig(['--listen', '1', '--target', '10.1.2.3:80', '--allow-remote'], {}).target.host, '10.1.2.3')
    assert.equal(resolveChaosConfig(['--listen', '1', '--target', '10.1.2.3:80'], { HOLDFAST_ALLOW_REMOTE: '1' }).target.host, '10.1.2.3')
    throwsCli(() => resolveChaosConfig(['--listen', '1', '--target', '10.1.2.3:80'], { HOLDFAST_ALLOW_REMOTE: 'false' }), 'not a loopback')
    throwsCli(() => resolveChaosConfig(['--listen', '1', '--target', '10.1.2.3:80'], { HOLDFAST_ALLOW_REMOTE: 'maybe' }), 'HOLDFAST_ALLOW_REMOTE must be true or false')
  })
})

describe('holdfast chaos (real process)', () => {
  test('prints the listening line, proxies, obeys the control API, and exits 0 on SIGTERM', async (t) => {
    const echo = await startEcho(t)
    const cli = runCli(['chaos', '--listen', '0', '--target', `127.0.0.1:${echo.port}`, '--control', '0', '--latency', '1'])
    t.after(() => cli.child.kill('SIGKILL'))
    const m = await cli.waitForLine(/^holdfast chaos listening on 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:(\d+) \(control (http:\/\/127\.0\.0\.1:\d+)\)$/)
    const port = Number(m[1])
    assert.equal(Number(m[2]), echo.port)
    const controlUrl = m[3] as string

    const faults = (await (await fetch(`${controlUrl}/faults`)).json()) as { upstream: { latencyMs: number } }
    assert.equal(faults.upstream.latencyMs, 1, 'the --latency flag took effect')

    const client = await connectTo(t, port)
    client.socket.write('abc')
    assert.equal((await client.waitForBytes(3)).toString(), 'abc')

    const put = await fetch(`${controlUrl}/faults`, { method: 'PUT', body: JSON.stringify({ blackhole: true }) })
    assert.equal(put.status, 200)
    client.socket.write('def')
    const bad = await fetch(`${controlUrl}/faults`, { method: 'PUT', body: '{"blackhole": 1}' })
    assert.equal(bad.status, 400)
    assert.match(((await bad.json()) as { error: string }).error, /blackhole must be true or false/)
    const stats = (await (await fetch(`${controlUrl}/stats`)).json()) as { connections: number; bytesDropped: number }
    assert.equal(stats.connections, 1)

    cli.child.kill('SIGTERM')
    const exit = await within(10_000, 'holdfast chaos to exit after SIGTERM', cli.exited)
    assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${cli.stderr()}`)
    // Stopping closes the proxied connections rather than leaving clients hanging.
    await within(5_000, 'the client to see the end of the stream', client.ended)
  })

  test('usage errors exit 2 with the message; help chaos lists every flag', async () => {
    const refused = await runCliToEnd(['chaos', '--listen', '0', '--target', '192.0.2.1:80'], cleanEnv())
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /holdfast: refusing --target 192\.0\.2\.1:80: it is not a loopback address/)
    const help = await runCliToEnd(['help', 'chaos'], cleanEnv())
    assert.equal(help.code, 0)
    for (const flag of ['--listen', '--target', '--control', '--latency', '--jitter', '--bandwidth', '--reset-rate', '--drop-rate', '--slice', '--allow-remote']) {
      assert.ok(help.stdout.includes(flag), flag)
    }
    assert.match((await runCliToEnd(['--help'], cleanEnv())).stdout, /chaos /)
  })
})
