import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CliError } from '../src/cli-error.js'
import { SETTINGS, envName, resolveServeConfig, type ServeConfig, type SettingName } from '../src/config.js'
import { parseDuration } from '../src/duration.js'

type Env = Record<string, string | undefined>

const noFile = (path: string): string => {
  throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' })
}

/** A readFile that serves one in-memory config file. */
function fileWith(content: unknown, name = 'holdfast.json'): (path: string) => string {
  return (path) => {
    if (path !== name) return noFile(path)
    return typeof content === 'string' ? content : JSON.stringify(content)
  }
}

function resolve(argv: string[], env: Env = {}, file?: unknown): ServeConfig {
  const args = file === undefined ? argv : [...argv, '--config', 'holdfast.json']
  return resolveServeConfig(args, env, file === undefined ? noFile : fileWith(file))
}

function throwsCli(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CliError, `expected a CliError, got ${String(err)}`)
    assert.equal(err.exitCode, 2)
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" should mention ${f}`)
    return true
  })
}

describe('resolveServeConfig defaults', () => {
  test('no flags, no env, no file', () => {
    const c = resolve([])
    assert.equal(c.port, 8080)
    assert.equal(c.host, '127.0.0.1')
    assert.equal(c.engine, 'memory')
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6379')
    assert.equal(c.workers, 1)
    assert.equal(c.logLevel, 'info')
    assert.equal(c.drainMs, undefined)
    assert.equal(c.apiKey, undefined)
    assert.equal(c.adminSecret, undefined)
    assert.equal(c.configFile, undefined)
    assert.equal(c.auth, false)
    assert.deepEqual(c.holdfast, {})
    for (const name of Object.keys(SETTINGS) as SettingName[]) assert.equal(c.sources[name], 'default', name)
  })

  test('without auth it warns loudly, outside production', () => {
    const c = resolve([], { NODE_ENV: 'development' })
    assert.equal(c.auth, false)
    assert.ok(c.warnings.some((w) => w.startsWith('NO AUTHENTICATION')))
  })

  test('env names are HOLDFAST_ + the flag in upper snake case', () => {
    assert.equal(envName('port'), 'HOLDFAST_PORT')
    assert.equal(envName('redisUrl'), 'HOLDFAST_REDIS_URL')
    assert.equal(envName('tokenSecret'), 'HOLDFAST_TOKEN_SECRET')
    assert.equal(envName('pingInterval'), 'HOLDFAST_PING_INTERVAL')
    assert.equal(envName('drainMs'), 'HOLDFAST_DRAIN_MS')
    assert.equal(envName('config'), 'HOLDFAST_CONFIG')
  })
})

/**
 * For each setting: three different valid raw values (flag, env, file) and how to read the
 * resolved value back, so one table checks flag > env > file > default for all of them.
 */
const PRECEDENCE: Record<Exclude<SettingName, 'config' | 'proxyProtocol' | 'webhookSecret'>, { raw: [string, string, string | number]; read: (c: ServeConfig) => unknown; want: [unknown, unknown, unknown] }> = {
  port: { raw: ['1111', '2222', 3333], read: (c) => c.port, want: [1111, 2222, 3333] },
  host: { raw: ['10.0.0.1', '0.0.0.0', 'localhost'], read: (c) => c.host, want: ['10.0.0.1', '0.0.0.0', 'localhost'] },
  engine: { raw: ['redis', 'memory', 'redis'], read: (c) => c.engine, want: ['redis', 'memory', 'redis'] },
  redisUrl: {
    raw: ['redis://a:6379', 'rediss://b:6380', 'redis://c:6381/2'],
    read: (c) => c.redisUrl,
    want: ['redis://a:6379', 'rediss://b:6380', 'redis://c:6381/2'],
  },
  workers: { raw: ['3', '2', 4], read: (c) => c.workers, want: [3, 2, 4] },
  transport: { raw: ['uws', 'ws', 'uws'], read: (c) => [c.transport, c.holdfast.transport], want: [['uws', 'uws'], ['ws', undefined], ['uws', 'uws']] },
  wsPort: { raw: ['4444', '5555', 6666], read: (c) => c.wsPort, want: [4444, 5555, 6666] },
  tokenSecret: {
    raw: ['flag-secret-0123456789abcdef0123456789', 'env-secret-0123456789abcdef0123456789', 'file-secret-0123456789abcdef0123456789'],
    read: (c) => c.holdfast.jwt?.secret,
    want: ['flag-secret-0123456789abcdef0123456789', 'env-secret-0123456789abcdef0123456789', 'file-secret-0123456789abcdef0123456789'],
  },
  apiKey: { raw: ['k1', 'k2', 'k3'], read: (c) => c.apiKey, want: ['k1', 'k2', 'k3'] },
  adminSecret: { raw: ['a1', 'a2', 'a3'], read: (c) => c.adminSecret, want: ['a1', 'a2', 'a3'] },
  sessionSecret: {
    raw: ['flag-session-secret-0123', 'env-session-secret-01234', 'file-session-secret-0123'],
    read: (c) => c.holdfast.sessionSecret,
    want: ['flag-session-secret-0123', 'env-session-secret-01234', 'file-session-secret-0123'],
  },
  publicUrl: { raw: ['wss://a.example/ws', 'wss://b.example/ws', 'ws://c.example/ws'], read: (c) => c.holdfast.publicUrl, want: ['wss://a.example/ws', 'wss://b.example/ws', 'ws://c.example/ws'] },
  pingInterval: { raw: ['5s', '1500ms', 700], read: (c) => c.holdfast.pingIntervalMs, want: [5000, 1500, 700] },
  drainMs: { raw: ['500', '2s', 0], read: (c) => [c.drainMs, c.holdfast.drainMs], want: [[500, 500], [2000, 2000], [0, 0]] },
  logLevel: { raw: ['debug', 'warn', 'silent'], read: (c) => c.logLevel, want: ['debug', 'warn', 'silent'] },
  pidFile: { raw: ['/run/a.pid', '/run/b.pid', '/run/c.pid'], read: (c) => c.pidFile, want: ['/run/a.pid', '/run/b.pid', '/run/c.pid'] },
  trustProxy: { raw: ['10.0.0.0/8', ' 192.168.0.0/16 , loopback', '::1'], read: (c) => c.holdfast.trustProxy, want: ['10.0.0.0/8', '192.168.0.0/16,loopback', '::1'] },
  logFormat: { raw: ['json', 'pretty', 'auto'], read: (c) => c.logFormat, want: ['json', 'pretty', 'auto'] },
  metricsPort: { raw: ['9090', '9091', 0], read: (c) => c.metricsPort, want: [9090, 9091, 0] },
  // Two values only ("apikey" needs --api-key, see its own test): the sources still show the order.
  metricsAuth: { raw: ['none', 'none', 'none'], read: (c) => c.metricsAuth, want: ['none', 'none', 'none'] },
  proxyUrl: { raw: ['http://a/p', 'http://b/p', 'https://c/p'], read: (c) => c.holdfast.proxy?.url, want: ['http://a/p', 'http://b/p', 'https://c/p'] },
  webhookUrl: { raw: ['http://a/h', 'http://b/h', 'https://c/h'], read: (c) => c.holdfast.webhooks?.url, want: ['http://a/h', 'http://b/h', 'https://c/h'] },
  // webhookSecret needs a URL beside it: see "backend proxy and webhook settings".
}

describe('metrics and HTTP limits', () => {
  test('--metrics-auth apikey needs an API key; --metrics-port must differ from --port', () => {
    assert.throws(() => resolve(['--metrics-auth', 'apikey']), /--metrics-auth apikey needs an API key/)
    assert.equal(resolve(['--metrics-auth', 'apikey', '--api-key', 'k']).metricsAuth, 'apikey')
    assert.throws(() => resolve(['--metrics-auth', 'open']), /--metrics-auth must be one of none, apikey/)
    assert.throws(() => resolve(['--port', '9000', '--metrics-port', '9000']), /--metrics-port must differ/)
    assert.equal(resolve([]).metricsPort, undefined)
  })

  test('the config file\'s "http" object sets the HTTP limits, and names a bad key or value', () => {
    assert.deepEqual(resolve([]).http, {})
    assert.deepEqual(resolve([], {}, { http: { connectionTimeoutMs: 5000, maxConnectionsPerIp: 0 } }).http, { connectionTimeoutMs: 5000, maxConnectionsPerIp: 0 })
    assert.throws(() => resolve([], {}, { http: { idleMs: 1 } }), /"http" in .*: unknown key "idleMs"/)
    assert.throws(() => resolve([], {}, { http: { headersTimeoutMs: -1 } }), /"headersTimeoutMs" must be a non-negative integer/)
    assert.throws(() => resolve([], {}, { http: [] }), /"http" in .* must be an object/)
  })
})

describe('precedence: flag > env > config file > default', () => {
  for (const [name, row] of Object.entries(PRECEDENCE) as [Exclude<SettingName, 'config' | 'proxyProtocol' | 'webhookSecret'>, (typeof PRECEDENCE)['port']][]) {
    const s = SETTINGS[name]
    const flag = ['--' + s.flag, row.raw[0]]
    const env = { [envName(name)]: row.raw[1] }
    const file = { [s.file]: row.raw[2] }
    test(name, () => {
      const all = resolve(flag, env, file)
      assert.deepEqual(row.read(all), row.want[0], 'flag wins')
      assert.equal(all.sources[name], 'flag')
      const envFile = resolve([], env, file)
      assert.deepEqual(row.read(envFile), row.want[1], 'env beats file')
      assert.equal(envFile.sources[name], 'env')
      const fileOnly = resolve([], {}, file)
      assert.deepEqual(row.read(fileOnly), row.want[2], 'file beats default')
      assert.equal(fileOnly.sources[name], 'file')
      const flagOnly = resolve(flag)
      assert.deepEqual(row.read(flagOnly), row.want[0])
    })
  }

  test('--proxy-protocol takes no value; HOLDFAST_PROXY_PROTOCOL and the file take true/false; it needs --trust-proxy', () => {
    const trust = ['--trust-proxy', '10.0.0.0/8']
    assert.equal(resolve(trust).proxyProtocol, false)
    assert.equal(resolve([...trust, '--proxy-protocol']).proxyProtocol, true)
    assert.equal(resolve(trust, { HOLDFAST_PROXY_PROTOCOL: 'true' }).proxyProtocol, true)
    assert.equal(resolve(trust, { HOLDFAST_PROXY_PROTOCOL: '0' }, { proxyProtocol: true }).proxyProtocol, false)
    assert.equal(resolve([], {}, { trustProxy: ['10.0.0.0/8', '::1'], proxyProtocol: true }).holdfast.trustProxy, '10.0.0.0/8,::1')
    assert.throws(() => resolve(trust, { HOLDFAST_PROXY_PROTOCOL: 'yes' }), { message: 'HOLDFAST_PROXY_PROTOCOL must be true or false, got "yes"' })
    assert.throws(() => resolve(['--proxy-protocol']), { message: /--proxy-protocol needs --trust-proxy \(or HOLDFAST_TRUST_PROXY\)/ })
    assert.throws(() => resolve([...trust, '--proxy-protocol', '--transport', 'uws']), { message: /--proxy-protocol needs --transport ws/ })
  })

  test('a bad --trust-proxy entry names the flag and the entry', () => {
    assert.throws(() => resolve(['--trust-proxy', '10.0.0.0/8,nginx']), { message: /^--trust-proxy: invalid IP address: nginx/ })
    assert.throws(() => resolve([], { HOLDFAST_TRUST_PROXY: '10.0.0.0/40' }), { message: /^HOLDFAST_TRUST_PROXY: invalid range/ })
  })

  test('--flag=value form', () => {
    assert.equal(resolve(['--port=9000']).port, 9000)
  })

  test('an empty env var counts as unset', () => {
    const c = resolve([], { HOLDFAST_PORT: '', HOLDFAST_TOKEN_SECRET: '' }, { port: 7000 })
    assert.equal(c.port, 7000)
    assert.equal(c.auth, false)
  })

  test('--config beats HOLDFAST_CONFIG', () => {
    const read = (path: string): string => JSON.stringify({ port: path === 'a.json' ? 1 : 2 })
    assert.equal(resolveServeConfig(['--config', 'a.json'], { HOLDFAST_CONFIG: 'b.json' }, read).port, 1)
    const c = resolveServeConfig([], { HOLDFAST_CONFIG: 'b.json' }, read)
    assert.equal(c.port, 2)
    assert.equal(c.configFile, 'b.json')
    assert.equal(c.sources.config, 'env')
  })
})

/** One bad raw value per setting, with what the error must say besides the name. */
const BAD: [SettingName, string, string][] = [
  ['port', 'abc', 'integer'],
  ['port', '65536', 'integer'],
  ['port', '-1', 'integer'],
  ['port', '80.5', 'integer'],
  ['host', 'a b', 'host'],
  ['engine', 'mysql', 'memory, redis'],
  ['redisUrl', 'http://x:1', 'redis://'],
  ['redisUrl', 'not a url', 'URL'],
  ['workers', '0', 'integer'],
  ['workers', 'two', 'integer'],
  ['pingInterval', '0', 'greater than zero'],
  ['pingInterval', 'soon', 'duration'],
  ['pingInterval', '5y', 'duration'],
  ['drainMs', 'later', 'duration'],
  ['drainMs', '-5', 'duration'],
  ['logLevel', 'loud', 'info'],
]

describe('bad values are refused, naming where they came from', () => {
  for (const [name, value, hint] of BAD) {
    const s = SETTINGS[name]
    test(`${name} = ${JSON.stringify(value)}`, () => {
      throwsCli(() => resolve([`--${s.flag}=${value}`]), `--${s.flag}`, hint, value)
      throwsCli(() => resolve([], { [envName(name)]: value }), envName(name), hint)
      throwsCli(() => resolve([], {}, { [s.file]: value }), `"${s.file}"`, 'holdfast.json', hint)
    })
  }

  for (const name of ['tokenSecret', 'apiKey', 'adminSecret', 'host', 'config'] as const) {
    test(`${name}: empty flag`, () => {
      throwsCli(() => resolve([`--${SETTINGS[name].flag}`, '']), `--${SETTINGS[name].flag}`)
    })
  }

  test('sessionSecret: too short to sign with, and the message does not echo the secret', () => {
    const value = 'fifteen-chars!!'
    for (const fn of [() => resolve(['--session-secret', value]), () => resolve([], { HOLDFAST_SESSION_SECRET: value }), () => resolve([], {}, { sessionSecret: value })]) {
      throwsCli(fn, 'at least 16')
      assert.throws(fn, (err: Error) => !err.message.includes(value))
    }
  })

  test('unknown flag', () => {
    throwsCli(() => resolve(['--prot', '80']), '--prot')
  })

  test('positional argument', () => {
    throwsCli(() => resolve(['8080']), '8080')
  })

  test('flag without a value', () => {
    throwsCli(() => resolve(['--port']), '--port')
  })
})

describe('config file', () => {
  test('server options pass through, including channels.namespaces', () => {
    const file = {
      maxPayload: 1024,
      allowedOrigins: ['https://app.example.com'],
      channels: { namespaces: { chat: { historySize: 50, presence: true, joinLeave: true } } },
      pingIntervalMs: 15000,
    }
    const c = resolve([], {}, file)
    assert.equal(c.holdfast.maxPayload, 1024)
    assert.deepEqual(c.holdfast.allowedOrigins, ['https://app.example.com'])
    assert.deepEqual(c.holdfast.channels, file.channels)
    assert.equal(c.holdfast.pingIntervalMs, 15000)
    assert.equal(c.configFile, 'holdfast.json')
    assert.equal(c.sources.config, 'flag')
  })

  test('serve-only keys do not leak into the server options', () => {
    const c = resolve([], {}, { port: 1, host: 'h', engine: 'memory', workers: 1, apiKey: 'k', logLevel: 'warn' })
    assert.deepEqual(c.holdfast, {})
  })

  test('missing file', () => {
    throwsCli(() => resolveServeConfig(['--config', 'nope.json'], {}, noFile), 'cannot read config file nope.json', 'ENOENT')
  })

  test('invalid JSON', () => {
    throwsCli(() => resolveServeConfig(['--config', 'holdfast.json'], {}, fileWith('{ port: 1 ')), 'holdfast.json', 'not valid JSON')
  })

  test('not an object', () => {
    throwsCli(() => resolve([], {}, [1, 2]), 'must hold a JSON object')
  })

  test('unknown key (a typo must not silently keep a default)', () => {
    throwsCli(() => resolve([], {}, { maxPayLoad: 10 }), 'unknown key "maxPayLoad"')
    throwsCli(() => resolve([], {}, { engine: 'memory', logger: false }), 'unknown key "logger"')
  })

  test('a serve key of the wrong type', () => {
    throwsCli(() => resolve([], {}, { port: true }), '"port"', 'string or a number')
    throwsCli(() => resolve([], {}, { host: { a: 1 } }), '"host"')
  })

  test('"redis" tunes the Redis engine; unknown keys in it are refused', () => {
    const redis = { prefix: 'prod', commandTimeoutMs: 1000, breaker: { resetTimeoutMs: 500 } }
    const c = resolve(['--engine', 'redis'], {}, { redis })
    assert.deepEqual(c.redis, redis)
    assert.deepEqual(c.holdfast, {}, 'engine tuning is not a server option')
    assert.deepEqual(resolve([]).redis, {})
    throwsCli(() => resolve([], {}, { redis: { url: 'redis://x' } }), '"redis" in holdfast.json', 'unknown key "url"', 'prefix')
    throwsCli(() => resolve([], {}, { redis: 'redis://x' }), '"redis" in holdfast.json', 'object')
  })

  test('--engine redis without a session secret warns that sessions stay on their node', () => {
    const warned = (c: ServeConfig): boolean => c.warnings.some((w) => w.includes('no session secret') && w.includes('HOLDFAST_SESSION_SECRET'))
    assert.equal(warned(resolve(['--engine', 'redis'])), true)
    assert.equal(warned(resolve(['--engine', 'redis', '--session-secret', 'x'.repeat(32)])), false)
    assert.equal(warned(resolve([])), false, 'one memory-engine node has nobody to share sessions with')
  })

  test('jwt in the file counts as auth', () => {
    const c = resolve([], { NODE_ENV: 'production' }, { jwt: { publicKey: '-----BEGIN PUBLIC KEY-----...', algorithms: ['RS256'] } })
    assert.equal(c.auth, true)
    assert.equal(c.warnings.length, 0)
  })

  test('jwt must be an object', () => {
    throwsCli(() => resolve(['--token-secret', 'x'.repeat(32)], {}, { jwt: 'secret' }), '"jwt"', 'object')
  })

  test('--token-secret replaces the key material of the file but keeps audience and issuer', () => {
    const secret = 's'.repeat(40)
    const c = resolve(['--token-secret', secret], {}, { jwt: { publicKey: 'PEM', algorithms: ['RS256'], audience: 'app', issuer: 'me' } })
    assert.deepEqual(c.holdfast.jwt, { audience: 'app', issuer: 'me', secret })
  })
})

describe('auth and production', () => {
  test('NODE_ENV=production without auth refuses to start', () => {
    throwsCli(() => resolve([], { NODE_ENV: 'production' }), 'refusing to start', 'NODE_ENV=production', '--token-secret')
  })

  test('NODE_ENV=production with a token secret starts, without the warning', () => {
    const c = resolve([], { NODE_ENV: 'production', HOLDFAST_TOKEN_SECRET: 'p'.repeat(32) })
    assert.equal(c.auth, true)
    assert.deepEqual(c.holdfast.jwt, { secret: 'p'.repeat(32) })
    assert.deepEqual(c.warnings, [])
  })

  test('a short token secret is accepted with a warning', () => {
    const c = resolve(['--token-secret', 'short'])
    assert.equal(c.auth, true)
    assert.ok(c.warnings.some((w) => w.includes('shorter than 32')))
  })
})

describe('parseDuration', () => {
  test('units and bare numbers', () => {
    assert.equal(parseDuration('x', '500ms'), 500)
    assert.equal(parseDuration('x', '25s'), 25_000)
    assert.equal(parseDuration('x', '1.5s'), 1500)
    assert.equal(parseDuration('x', '10m'), 600_000)
    assert.equal(parseDuration('x', '1h'), 3_600_000)
    assert.equal(parseDuration('x', '2d'), 172_800_000)
    assert.equal(parseDuration('x', '250'), 250)
    assert.equal(parseDuration('x', '90', 's'), 90_000)
  })

  test('garbage', () => {
    for (const bad of ['', 'ms', '1 h', '-1s', '1e3', 'Infinity', '1hour']) {
      throwsCli(() => parseDuration('--x', bad), '--x')
    }
  })
})

describe('backend proxy and webhook settings', () => {
  test('--proxy-url sets proxy.url over the file\'s per-event settings, and counts as authentication', () => {
    const c = resolve(['--proxy-url', 'http://127.0.0.1:9000/holdfast'], { NODE_ENV: 'production' }, { proxy: { timeoutMs: 800, rpc: { timeoutMs: 2000 }, publish: { namespaces: ['chat'] } } })
    assert.deepEqual(c.holdfast.proxy, { timeoutMs: 800, rpc: { timeoutMs: 2000 }, publish: { namespaces: ['chat'] }, url: 'http://127.0.0.1:9000/holdfast' })
    assert.equal(c.auth, true)
    assert.equal(c.warnings.some((w) => w.includes('NO AUTHENTICATION')), false)
    assert.equal(c.sources.proxyUrl, 'flag')
  })

  test('a proxy without connect is not authentication', () => {
    const c = resolve(['--proxy-url', 'http://b/x'], {}, { proxy: { connect: false } })
    assert.equal(c.auth, false)
  })

  test('webhooks from flags, env and the file; a URL is required', () => {
    const c = resolve(['--webhook-url', 'https://app.example/hooks'], { HOLDFAST_WEBHOOK_SECRET: 'sixteen-chars-secret' }, { webhooks: { maxQueue: 50, events: ['join', 'leave'] } })
    assert.deepEqual(c.holdfast.webhooks, { maxQueue: 50, events: ['join', 'leave'], url: 'https://app.example/hooks', secret: 'sixteen-chars-secret' })
    throwsCli(() => resolve([], {}, { webhooks: { secret: 'sixteen-chars-secret' } }), '--webhook-url')
  })

  test('bad URLs and shapes name where they came from', () => {
    throwsCli(() => resolve(['--proxy-url', 'ftp://x']), '--proxy-url', 'http://')
    throwsCli(() => resolve([], { HOLDFAST_WEBHOOK_URL: 'not a url' }), 'HOLDFAST_WEBHOOK_URL')
    throwsCli(() => resolve([], {}, { proxy: 'http://x' }), '"proxy"', 'object')
  })
})
