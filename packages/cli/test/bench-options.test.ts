import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CliError } from '../src/cli-error.js'
import { parseSourceIps, resolveBenchConfig } from '../src/bench/index.js'
import { runCli } from './helpers.js'

const resolve = (argv: string[], env: Record<string, string> = {}) => resolveBenchConfig(argv, env)

function refuses(argv: string[], re: RegExp, env: Record<string, string> = {}): void {
  assert.throws(() => resolve(argv, env), (err: unknown) => err instanceof CliError && re.test(err.message))
}

describe('holdfast bench options', () => {
  it('has defaults that start a holdfast server and run a small fan-out', () => {
    const c = resolve([])
    assert.equal(c.url, undefined)
    assert.equal(c.server, 'holdfast')
    assert.equal(c.mode, 'fanout')
    assert.equal(c.connections, 1000)
    assert.equal(c.durationS, 10)
    assert.equal(c.sourceIps.length, 8)
    assert.equal(c.sourceIps[7], '127.0.0.8')
    assert.ok(c.timeoutS > c.durationS, 'every run has a hard bound')
  })

  it('parses the scenario flags', () => {
    const c = resolve(['--url', 'ws://127.0.0.1:8080/ws', '--connections', '10000', '--duration', '30s', '--rate', '40', '--size', '64', '--channels', '1', '--ramp', '2000', '--workers', '2', '--json', 'r.json'])
    assert.equal(c.url, 'ws://127.0.0.1:8080/ws')
    assert.equal(c.connections, 10000)
    assert.equal(c.durationS, 30)
    assert.equal(c.workers, 2)
    assert.equal(c.json, 'r.json')
    assert.equal(resolve(['--duration', '2m']).durationS, 120)
  })

  it('refuses a URL that is not on this machine, and says why', () => {
    refuses(['--url', 'ws://10.0.0.1:8080/ws'], /not a loopback address\. A benchmark is a deliberate overload.*--allow-remote to load a host you own/s)
    refuses(['--url', 'ws://example.com/ws'], /not a loopback/)
    for (const ok of ['ws://127.0.0.1:1/ws', 'ws://localhost:1/ws', 'ws://[::1]:1/ws', 'ws://127.0.0.9:1/ws']) assert.ok(resolve(['--url', ok]).url)
    assert.equal(resolve(['--url', 'ws://10.0.0.1:8080/ws', '--allow-remote']).url, 'ws://10.0.0.1:8080/ws')
    refuses(['--url', 'http://127.0.0.1:8080/ws'], /ws:\/\/ or wss:\/\//)
  })

  it('keeps each process within its open files and each source address within its ports', () => {
    refuses(['--connections', '40000', '--workers', '2'], /at most 18000.*--workers 3/)
    assert.equal(resolve(['--connections', '40000', '--source-ips', '127.0.0.1-8']).workers >= 3, true)
    refuses(['--connections', '100000', '--workers', '8', '--source-ips', '127.0.0.1-2'], /more source addresses/)
  })

  it('parses source address lists and ranges, loopback only', () => {
    assert.deepEqual(parseSourceIps('127.0.0.1-3,127.0.0.9', false), ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.9'])
    assert.throws(() => parseSourceIps('10.0.0.1', false), /loopback/)
    assert.throws(() => parseSourceIps('127.0.0.5-2', false), /count up/)
    assert.throws(() => parseSourceIps('localhost', false), /IPv4/)
  })

  it('refuses combinations that make no sense, naming the flag', () => {
    refuses(['--compare', '--url', 'ws://127.0.0.1:1/ws'], /--compare starts its own servers/)
    refuses(['--servers', 'ws'], /only applies with --compare/)
    refuses(['--compare', '--servers', 'ws,uws'], /must include holdfast or holdfast-uws/)
    refuses(['--step', '10'], /only applies with --mode shootout/)
    refuses(['--server-pid', '1'], /goes with --url/)
    refuses(['--url', 'ws://127.0.0.1:1/ws', '--server-pid', '12,x'], /--server-pid must be a whole number/)
    refuses(['--token', 'a', '--token-secret', 'b'], /either --token or --token-secret/)
    refuses(['--mode', 'storm'], /--mode must be one of fanout, shootout/)
    refuses(['--connections', '0'], /--connections must be a whole number from 1/)
    refuses(['--rate', 'fast'], /--rate must be a number/)
    refuses(['--server', 'nginx'], /--server must be one of/)
    refuses(['--conections', '5'], /Unknown option/)
  })

  it('takes several server pids (a serve --workers primary and its workers), each once', () => {
    assert.deepEqual(resolve(['--url', 'ws://127.0.0.1:1/ws', '--server-pid', '10,11,12,11']).serverPids, [10, 11, 12])
    assert.deepEqual(resolve(['--url', 'ws://127.0.0.1:1/ws', '--server-pid', '7']).serverPids, [7])
    assert.deepEqual(resolve(['--url', 'ws://127.0.0.1:1/ws']).serverPids, [])
  })

  it('orders --servers with holdfast first and reads the token secret from the environment only with --url', () => {
    assert.deepEqual(resolve(['--compare', '--servers', 'ws,holdfast']).servers, ['holdfast', 'ws'])
    assert.equal(resolve([], { HOLDFAST_TOKEN_SECRET: 's' }).tokenSecret, undefined)
    assert.equal(resolve(['--url', 'ws://127.0.0.1:1/ws'], { HOLDFAST_TOKEN_SECRET: 's' }).tokenSecret, 's')
  })

  it('the command refuses a remote URL with exit code 2 before opening anything', async () => {
    const cli = runCli(['bench', '--url', 'ws://192.0.2.10:8080/ws', '--connections', '10', '--duration', '1'])
    const { code } = await cli.exited
    assert.equal(code, 2)
    assert.match(cli.stderr(), /refusing --url .*not a loopback address/)
  })

  it('help lists every flag', async () => {
    const cli = runCli(['help', 'bench'])
    assert.equal((await cli.exited).code, 0)
    for (const flag of ['--url', '--connections', '--duration', '--rate', '--size', '--channels', '--ramp', '--workers', '--source-ips', '--token', '--token-secret', '--json', '--html', '--mode', '--p95-limit-ms', '--compare', '--allow-remote']) {
      assert.ok(cli.stdout().includes(flag), flag)
    }
  })
})
