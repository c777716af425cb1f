import { parseArgs } from 'node:util'
import type { HoldfastOptions, TransportName } from '@holdfast/server'
import type { RedisEngineOptions } from '@holdfast/server/redis'
// Modules of their own, so that reading the configuration never loads the gateway (`--version`, `help`).
import { resolveTrustProxy } from '@holdfast/server/internal/client-address'
import { parseRedisUrl as parseRedisTopology } from '@holdfast/server/internal/redis-url'
import type { HttpGuardOptions } from '@holdfast/server/internal'
import { CliError } from './cli-error.js'
import { parseDuration } from './duration.js'

export const ENGINES = ['memory', 'redis'] as const
export type EngineName = (typeof ENGINES)[number]

export const TRANSPORTS = ['ws', 'uws'] as const satisfies readonly TransportName[]

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** auto: pretty lines on a terminal, JSON otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

/** Where a setting's value came from, in precedence order (a flag beats everything). */
export type SettingSource = 'flag' | 'env' | 'file' | 'default'

/** `holdfast serve` settings after flags, env vars, config file and defaults are merged. */
export interface ServeConfig {
  /** TCP port; 0 picks a free one (the listening line shows which). */
  port: number
  host: string
  engine: EngineName
  redisUrl: string
  /** Redis engine tuning from the config file's "redis" object (prefix, timeouts, breaker). */
  redis: RedisTuning
  /** Worker processes behind one port (a primary supervises them when > 1). */
  workers: number
  /** What carries the WebSockets: ws (on the HTTP port) or uws (uWebSockets.js on wsPort). */
  transport: TransportName
  /** With uws: the WebSocket port; undefined means port + 1 (0 when port is 0). */
  wsPort: number | undefined
  /** Where to write the process id (the primary's with --workers), for `holdfast reload`. */
  pidFile: string | undefined
  logLevel: LogLevel
  logFormat: LogFormat
  /** A listener of its own for `/metrics` (then not served on --port); undefined: /metrics on --port. */
  metricsPort: number | undefined
  /** Who may scrape /metrics: anyone reaching it, or callers with the API key. */
  metricsAuth: MetricsAuth
  /** HTTP server limits from the config file's "http" object (timeouts, per-address connection cap). */
  http: HttpGuardOptions
  /** Drain window on SIGTERM/SIGINT; undefined means the server's default. */
  drainMs: number | undefined
  /** Read PROXY protocol v1/v2 headers from the trusted proxies (`holdfast.trustProxy`) on the listener. */
  proxyProtocol: boolean
  apiKey: string | undefined
  adminSecret: string | undefined
  /** The config file that was read, if any. */
  configFile: string | undefined
  /** Options for `createHoldfast`, without `engine` and `logger` (serve adds those). */
  holdfast: HoldfastOptions
  /** true when connection tokens are verified; false means anonymous clients are accepted. */
  auth: boolean
  /** Where each setting came from, for the startup log. */
  sources: Record<SettingName, SettingSource>
  /** Things the operator should hear about at startup (no auth, a short secret...). */
  warnings: string[]
}

export type ReadFile = (path: string) => string

interface Setting {
  /** Flag name without dashes. */
  flag: string
  /** Key in the config file. */
  file: string
  /** One line for `holdfast help serve` and docs/cli.md. */
  help: string
  /** A flag without a value (`--proxy-protocol`); its env var and file key take true/false. */
  boolean?: true
}

/**
 * Every serve setting: one row gives the flag, the env var (derived: HOLDFAST_ + the flag in
 * upper snake case, so the two can never drift apart) and the config-file key.
 */
export const SETTINGS = {
  port: { flag: 'port', file: 'port', help: 'TCP port to listen on; 0 picks a free one (default 8080)' },
  host: { flag: 'host', file: 'host', help: 'address to bind (default 127.0.0.1; 0.0.0.0 for all interfaces)' },
  engine: { flag: 'engine', file: 'engine', help: 'memory | redis (default memory)' },
  redisUrl: { flag: 'redis-url', file: 'redisUrl', help: 'Redis for --engine redis: redis://host:port, redis+sentinel://host:port,host:port/<master-name> or redis+cluster://host:port,host:port (default redis://127.0.0.1:6379)' },
  workers: { flag: 'workers', file: 'workers', help: 'worker processes (default 1; needs --transport ws)' },
  transport: { flag: 'transport', file: 'transport', help: 'ws | uws: what carries the WebSockets (default ws); uws serves them on --ws-port' },
  wsPort: { flag: 'ws-port', file: 'wsPort', help: 'with --transport uws: the WebSocket port (default --port + 1; 0 picks a free one)' },
  config: { flag: 'config', file: 'config', help: 'JSON config file (server options, channels.namespaces...)' },
  tokenSecret: { flag: 'token-secret', file: 'tokenSecret', help: 'HS256 secret for connection tokens (none: anonymous clients)' },
  apiKey: { flag: 'api-key', file: 'apiKey', help: 'key for the server HTTP API (Authorization: apikey <key>)' },
  adminSecret: { flag: 'admin-secret', file: 'adminSecret', help: 'secret for the admin dashboard' },
  sessionSecret: {
    flag: 'session-secret',
    file: 'sessionSecret',
    help: 'signs session resume tokens; give every node of a fleet the same one (default: random per process)',
  },
  publicUrl: { flag: 'public-url', file: 'publicUrl', help: 'the ws:// or wss:// URL clients reach this node at, listed by GET /discovery (default: not listed)' },
  pingInterval: { flag: 'ping-interval', file: 'pingIntervalMs', help: 'application ping period, e.g. 25s (bare number: ms; default 25s)' },
  drainMs: { flag: 'drain-ms', file: 'drainMs', help: 'drain window on SIGTERM, in ms (default 10000)' },
  logLevel: { flag: 'log-level', file: 'logLevel', help: `${LOG_LEVELS.join(' | ')} (default info)` },
  logFormat: { flag: 'log-format', file: 'logFormat', help: 'auto | json | pretty (default auto: pretty on a terminal, JSON lines otherwise)' },
  pidFile: { flag: 'pid-file', file: 'pidFile', help: 'write the (primary) process id here, for `holdfast reload --pid-file`' },
  trustProxy: {
    flag: 'trust-proxy',
    file: 'trustProxy',
    help: 'CIDRs of the proxies whose X-Forwarded-For / X-Real-IP (and PROXY headers) name the client, comma-separated (default: none)',
  },
  proxyProtocol: { flag: 'proxy-protocol', file: 'proxyProtocol', help: 'accept PROXY protocol v1/v2 headers from the --trust-proxy hops (TCP load balancers)', boolean: true },
  metricsPort: { flag: 'metrics-port', file: 'metricsPort', help: 'serve /metrics on this port only (not on --port); 0 picks a free one' },
  metricsAuth: { flag: 'metrics-auth', file: 'metricsAuth', help: 'none | apikey: who may scrape /metrics (apikey: Authorization: apikey <--api-key>; default none)' },
  proxyUrl: {
    flag: 'proxy-url',
    file: 'proxyUrl',
    help: 'application backend: connect, refresh, subscribe, publish and rpc are POSTed to <URL>/<event> (docs/proxy.md; config "proxy" for per-event settings)',
  },
  webhookUrl: { flag: 'webhook-url', file: 'webhookUrl', help: 'POST connection and channel events here, at least once (docs/proxy.md; config "webhooks")' },
  webhookSecret: { flag: 'webhook-secret', file: 'webhookSecret', help: 'HMAC-SHA256 key signing each webhook (X-Holdfast-Signature); at least 16 characters' },
} as const satisfies Record<string, Setting>

export type SettingName = keyof typeof SETTINGS

export function envName(setting: SettingName): string {
  return `HOLDFAST_${SETTINGS[setting].flag.toUpperCase().replace(/-/g, '_')}`
}

/**
 * Server options a config file may hold besides the serve settings: the JSON-expressible part of
 * HoldfastOptions. Hooks, engines and loggers are code, so they belong to the library API.
 * Their values are validated by the server's own resolveOptions when the gateway is created.
 */
const FILE_SERVER_OPTIONS = new Set<string>([
  'nodeId',
  'jwt',
  'allowAnonymous',
  'allowedOrigins',
  'pongTimeoutMs',
  'connectTimeoutMs',
  'maxPayload',
  'maxBatch',
  'maxSubscriptionsPerConnection',
  'commandRate',
  'inboundByteRate',
  'maxConnections',
  'maxConnectionsPerIp',
  'connectRatePerIp',
  'maxQueueBytes',
  'maxReplyBytes',
  'idempotencyTtlMs',
  'maxMessageIdsPerUser',
  'presenceTtlMs',
  'sessionMaxAgeMs',
  'compression',
  'channels',
  'proxy',
  'webhooks',
])

/**
 * Redis engine options a config file's "redis" object may set. The URL comes from --redis-url;
 * clients, clocks and callbacks are code. Values are checked by the engine's own resolveOptions.
 */
export const REDIS_FILE_OPTIONS = [
  'prefix',
  'commandTimeoutMs',
  'healthCheckIntervalMs',
  'breaker',
  'reconnectBaseMs',
  'reconnectMaxMs',
  'startTimeoutMs',
  'idempotencyTtlMs',
  'shardedPubSub',
  'replicaWaitMs',
] as const satisfies readonly (keyof RedisEngineOptions)[]

export type RedisTuning = Pick<RedisEngineOptions, (typeof REDIS_FILE_OPTIONS)[number]>

/** Config-file keys that are neither serve settings nor server options. */
const FILE_ONLY_KEYS = new Set<string>(['redis', 'http'])

/** The config file's "http" object: limits of the HTTP server (docs/cli.md, "HTTP limits"). */
export const HTTP_FILE_OPTIONS = [
  'connectionTimeoutMs',
  'headersTimeoutMs',
  'requestTimeoutMs',
  'keepAliveTimeoutMs',
  'maxConnectionsPerIp',
] as const satisfies readonly (keyof HttpGuardOptions)[]

export const METRICS_AUTH = ['none', 'apikey'] as const
export type MetricsAuth = (typeof METRICS_AUTH)[number]

const DEFAULT_PORT = 8080
const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'
/** Below this an HS256 secret can be brute-forced offline from any token it signed. */
const MIN_SECRET_LENGTH = 32
/** The server refuses shorter session secrets (an HMAC key that short is guessable). */
const MIN_SESSION_SECRET_LENGTH = 16

/** A raw value and the name to blame when it is bad (`--port`, `HOLDFAST_PORT`, `"port" in f.json`). */
interface Raw {
  value: string
  label: string
  source: SettingSource
}

function parseInteger(r: Raw, min: number, max: number): number {
  const n = /^\d+$/.test(r.value.trim()) ? Number(r.value.trim()) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliError(`${r.label} must be an integer from ${min} to ${max}, got "${r.value}"`)
  }
  return n
}

function parseChoice<T extends string>(r: Raw, choices: readonly T[]): T {
  const v = r.value.trim()
  if (!(choices as readonly string[]).includes(v)) {
    throw new CliError(`${r.label} must be one of ${choices.join(', ')}, got "${r.value}"`)
  }
  return v as T
}

function parseNonEmpty(r: Raw): string {
  if (r.value.length === 0) throw new CliError(`${r.label} must not be empty`)
  return r.value
}

function parseHttpUrl(r: Raw): string {
  let u: URL | undefined
  try {
    u = new URL(r.value.trim())
  } catch {}
  if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new CliError(`${r.label} must be an http:// or https:// URL, got "${r.value}"`)
  return r.value.trim()
}

function parseHost(r: Raw): string {
  const v = r.value.trim()
  if (v.length === 0 || /\s|\//.test(v)) throw new CliError(`${r.label} must be a host name or IP address, got "${r.value}"`)
  return v
}

function parseRedisUrl(r: Raw): string {
  try {
    // One server, Sentinel or Cluster; the parser says what is wrong with a bad one.
    parseRedisTopology(r.value)
  } catch (err) {
    const why = err instanceof TypeError ? err.message.replace(/^holdfast: /, '') : String(err)
    throw new CliError(`${r.label}: ${why}`)
  }
  return r.value.trim()
}

function parseSessionSecret(r: Raw): string {
  if (r.value.length < MIN_SESSION_SECRET_LENGTH) {
    throw new CliError(`${r.label} must be at least ${MIN_SESSION_SECRET_LENGTH} characters (32 or more recommended)`)
  }
  return r.value
}

function parseRedisTuning(v: unknown, label: string): RedisTuning {
  if (v === undefined) return {}
  if (!isPlainObject(v)) throw new CliError(`${label} must be an object`)
  const known = new Set<string>(REDIS_FILE_OPTIONS)
  for (const key of Object.keys(v)) {
    if (!known.has(key)) throw new CliError(`${label}: unknown key "${key}" (allowed: ${REDIS_FILE_OPTIONS.join(', ')})`)
  }
  return v as RedisTuning
}

function parseHttpLimits(v: unknown, label: string): HttpGuardOptions {
  if (v === undefined) return {}
  if (!isPlainObject(v)) throw new CliError(`${label} must be an object`)
  const known = new Set<string>(HTTP_FILE_OPTIONS)
  for (const [key, value] of Object.entries(v)) {
    if (!known.has(key)) throw new CliError(`${label}: unknown key "${key}" (allowed: ${HTTP_FILE_OPTIONS.join(', ')})`)
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new CliError(`${label}: "${key}" must be a non-negative integer (0 turns it off), got ${JSON.stringify(value)}`)
    }
  }
  return v as HttpGuardOptions
}

function parsePositiveDuration(r: Raw): number {
  const ms = parseDuration(r.label, r.value, 'ms')
  if (ms <= 0) throw new CliError(`${r.label} must be greater than zero, got "${r.value}"`)
  return ms
}

function parseBoolean(r: Raw): boolean {
  const v = r.value.trim().toLowerCase()
  if (v === 'true' || v === '1') return true
  if (v === 'false' || v === '0') return false
  throw new CliError(`${r.label} must be true or false, got "${r.value}"`)
}

function parseTrustProxy(r: Raw): string | undefined {
  try {
    return resolveTrustProxy(r.value)?.list.join(',')
  } catch (err) {
    // The server's message names the bad entry; the label names where it came from.
    throw new CliError(`${r.label}: ${(err as Error).message.replace(/^holdfast: option "trustProxy": /, '')}`, { cause: err })
  }
}

function parseDrain(r: Raw): number {
  return parseDuration(r.label, r.value, 'ms')
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function readConfigFile(path: string, readFile: ReadFile): Record<string, unknown> {
  let text: string
  try {
    text = readFile(path)
  } catch (err) {
    throw new CliError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new CliError(`config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  if (!isPlainObject(parsed)) throw new CliError(`config file ${path} must hold a JSON object`)
  const serveKeys = new Set<string>(Object.values(SETTINGS).map((s) => s.file))
  serveKeys.delete('config') // a config file pointing at another one would only confuse
  for (const key of Object.keys(parsed)) {
    if (!serveKeys.has(key) && !FILE_SERVER_OPTIONS.has(key) && !FILE_ONLY_KEYS.has(key)) {
      // Typos in a config file are otherwise silent: a misspelt limit just keeps its default.
      throw new CliError(`config file ${path}: unknown key "${key}"`)
    }
  }
  return parsed
}

const FLAG_OPTIONS = Object.fromEntries(
  Object.values(SETTINGS).map((s: Setting) => [s.flag, { type: s.boolean === true ? ('boolean' as const) : ('string' as const) }]),
) as Record<string, { type: 'string' | 'boolean' }>

function parseFlags(argv: readonly string[]): Record<string, string | undefined> {
  try {
    const { values } = parseArgs({ args: [...argv], options: FLAG_OPTIONS, strict: true, allowPositionals: false })
    // A boolean flag that is present reads as "true", like its env var would.
    return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === 'boolean' ? String(v) : v]))
  } catch (err) {
    // parseArgs messages already name the flag ("Unknown option '--prot'").
    throw new CliError((err as Error).message, { cause: err })
  }
}

/**
 * Merge `holdfast serve` settings from flags, env vars (`HOLDFAST_<FLAG>`), a JSON config file and
 * defaults, in that order of precedence, and validate each once. Pure apart from `readFile`, so
 * every combination can be unit-tested. Throws a CliError naming the flag, env var or file key
 * whose value is bad, or refusing a production start without authentication.
 */
export function resolveServeConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: ReadFile,
): ServeConfig {
  const flags = parseFlags(argv)
  const sources = {} as Record<SettingName, SettingSource>

  const fromFlagOrEnv = (name: SettingName): Raw | undefined => {
    const s = SETTINGS[name]
    const flag = flags[s.flag]
    if (flag !== undefined) return { value: flag, label: `--${s.flag}`, source: 'flag' }
    const e = env[envName(name)]
    // An empty variable counts as unset: compose files and CI templates often leave them blank.
    if (e !== undefined && e !== '') return { value: e, label: envName(name), source: 'env' }
    return undefined
  }

  const configRaw = fromFlagOrEnv('config')
  const configFile = configRaw === undefined ? undefined : parseNonEmpty(configRaw)
  sources.config = configRaw?.source ?? 'default'
  const file = configFile === undefined ? {} : readConfigFile(configFile, readFile)

  const raw = (name: SettingName): Raw | undefined => {
    const direct = fromFlagOrEnv(name)
    if (direct !== undefined) return direct
    const key = SETTINGS[name].file
    const v = file[key]
    if (v === undefined) return undefined
    const label = `"${key}" in ${configFile ?? 'the config file'}`
    if (typeof v === 'string') return { value: v, label, source: 'file' }
    if (typeof v === 'number' && Number.isFinite(v)) return { value: String(v), label, source: 'file' }
    if (typeof v === 'boolean' && (SETTINGS[name] as Setting).boolean === true) return { value: String(v), label, source: 'file' }
    // A list in the file is the comma-separated value of the flag.
    if (name === 'trustProxy' && Array.isArray(v) && v.every((e) => typeof e === 'string')) return { value: v.join(','), label, source: 'file' }
    throw new CliError(`${label} must be a string or a number, got ${JSON.stringify(v)}`)
  }

  function get<T>(name: SettingName, parse: (r: Raw) => T, fallback: T): T {
    const r = raw(name)
    sources[name] = r?.source ?? 'default'
    return r === undefined ? fallback : parse(r)
  }

  const port = get('port', (r) => parseInteger(r, 0, 65535), DEFAULT_PORT)
  const host = get('host', parseHost, DEFAULT_HOST)
  const engine = get('engine', (r) => parseChoice(r, ENGINES), 'memory' as EngineName)
  const redisUrl = get('redisUrl', parseRedisUrl, DEFAULT_REDIS_URL)
  const workers = get('workers', (r) => parseInteger(r, 1, 1024), 1)
  const transport = get('transport', (r) => parseChoice(r, TRANSPORTS), 'ws' as TransportName)
  const wsPort = get<number | undefined>('wsPort', (r) => parseInteger(r, 0, 65535), undefined)
  const tokenSecret = get<string | undefined>('tokenSecret', parseNonEmpty, undefined)
  const apiKey = get<string | undefined>('apiKey', parseNonEmpty, undefined)
  const adminSecret = get<string | undefined>('adminSecret', parseNonEmpty, undefined)
  const sessionSecret = get<string | undefined>('sessionSecret', parseSessionSecret, undefined)
  const redis = parseRedisTuning(file['redis'], `"redis" in ${configFile ?? 'the config file'}`)
  const pingIntervalMs = get<number | undefined>('pingInterval', parsePositiveDuration, undefined)
  const publicUrl = get<string | undefined>('publicUrl', parseNonEmpty, undefined)
  const drainMs = get<number | undefined>('drainMs', parseDrain, undefined)
  const logLevel = get('logLevel', (r) => parseChoice(r, LOG_LEVELS), 'info' as LogLevel)
  const logFormat = get('logFormat', (r) => parseChoice(r, LOG_FORMATS), 'auto' as LogFormat)
  const pidFile = get<string | undefined>('pidFile', parseNonEmpty, undefined)
  const trustProxy = get<string | undefined>('trustProxy', parseTrustProxy, undefined)
  const proxyProtocol = get('proxyProtocol', parseBoolean, false)
  const metricsPort = get<number | undefined>('metricsPort', (r) => parseInteger(r, 0, 65535), undefined)
  const metricsAuth = get('metricsAuth', (r) => parseChoice(r, METRICS_AUTH), 'none' as MetricsAuth)
  const http = parseHttpLimits(file['http'], `"http" in ${configFile ?? 'the config file'}`)
  const proxyUrl = get<string | undefined>('proxyUrl', parseHttpUrl, undefined)
  const webhookUrl = get<string | undefined>('webhookUrl', parseHttpUrl, undefined)
  const webhookSecret = get<string | undefined>('webhookSecret', parseNonEmpty, undefined)
  if (metricsAuth === 'apikey' && apiKey === undefined) {
    throw new CliError(`--metrics-auth apikey needs an API key: set --api-key (or ${envName('apiKey')})`)
  }
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
    throw new CliError(`--metrics-port must differ from --port (${port})`)
  }

  const holdfast: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(file)) {
    if (FILE_SERVER_OPTIONS.has(key)) holdfast[key] = value
  }
  if (pingIntervalMs !== undefined) holdfast['pingIntervalMs'] = pingIntervalMs
  if (drainMs !== undefined) holdfast['drainMs'] = drainMs
  if (sessionSecret !== undefined) holdfast['sessionSecret'] = sessionSecret
  if (publicUrl !== undefined) holdfast['publicUrl'] = publicUrl
  if (transport !== 'ws') holdfast['transport'] = transport
  if (trustProxy !== undefined) holdfast['trustProxy'] = trustProxy

  for (const key of ['proxy', 'webhooks'] as const) {
    if (holdfast[key] !== undefined && !isPlainObject(holdfast[key])) throw new CliError(`"${key}" in ${configFile ?? 'the config file'} must be an object`)
  }
  if (proxyUrl !== undefined) holdfast['proxy'] = { ...(holdfast['proxy'] as object | undefined), url: proxyUrl }
  if (webhookUrl !== undefined || webhookSecret !== undefined) {
    holdfast['webhooks'] = {
      ...(holdfast['webhooks'] as object | undefined),
      ...(webhookUrl === undefined ? {} : { url: webhookUrl }),
      ...(webhookSecret === undefined ? {} : { secret: webhookSecret }),
    }
  }
  if (holdfast['webhooks'] !== undefined && (holdfast['webhooks'] as Record<string, unknown>)['url'] === undefined) {
    throw new CliError(`webhooks need a URL: set --webhook-url (or ${envName('webhookUrl')}), or "url" in "webhooks"`)
  }
  const fileJwt = holdfast['jwt']
  if (fileJwt !== undefined && !isPlainObject(fileJwt)) {
    throw new CliError(`"jwt" in ${configFile ?? 'the config file'} must be an object`)
  }
  if (tokenSecret !== undefined) {
    // The secret replaces whatever key material the file had; audience, issuer and clock
    // tolerance still apply. Keeping a file's publicKey or RS256 list would fail every HS256 token.
    const { secret: _s, publicKey: _p, jwksUrl: _j, algorithms: _a, ...rest } = fileJwt ?? {}
    holdfast['jwt'] = { ...rest, secret: tokenSecret }
  }
  const jwt = holdfast['jwt'] as Record<string, unknown> | undefined
  const proxy = holdfast['proxy'] as Record<string, unknown> | undefined
  // A connect proxied to the backend is authentication too: the backend decides who connects.
  const proxiedConnect = proxy !== undefined && proxy['connect'] !== false && (proxy['url'] !== undefined || isPlainObject(proxy['connect']))
  const auth = proxiedConnect || (jwt !== undefined && (jwt['secret'] !== undefined || jwt['publicKey'] !== undefined || jwt['jwksUrl'] !== undefined))

  if (proxyProtocol && trustProxy === undefined) {
    // Believing a PROXY header from anyone would let every client pick its own address.
    throw new CliError(`--proxy-protocol needs --trust-proxy (or ${envName('trustProxy')}): the addresses of the load balancers allowed to send PROXY headers`)
  }
  if (proxyProtocol && transport === 'uws') throw new CliError('--proxy-protocol needs --transport ws (uWebSockets.js reads its own socket)')

  const warnings: string[] = []
  if (wsPort !== undefined && transport !== 'uws') warnings.push('--ws-port only applies with --transport uws (ws serves WebSockets on --port); ignored')
  if (!auth) {
    if (env['NODE_ENV'] === 'production') {
      throw new CliError(
        'refusing to start: NODE_ENV=production and no authentication is configured. ' +
          `Set --token-secret (or ${envName('tokenSecret')}), "jwt" in the config file, or --proxy-url.`,
      )
    }
    warnings.push(
      `NO AUTHENTICATION: any client can connect, subscribe and publish anonymously. ` +
        `Set --token-secret (or ${envName('tokenSecret')}) to require signed connection tokens; ` +
        `with NODE_ENV=production holdfast refuses to start like this.`,
    )
  }
  if (engine === 'redis' && sessionSecret === undefined) {
    // A random per-process secret makes every other node refuse this node's resume tokens.
    warnings.push(
      `no session secret: sessions resume only on the node that issued them. Give every node the same ` +
        `--session-secret (or ${envName('sessionSecret')}) so that a client failing over keeps its session.`,
    )
  }
  const secret = jwt?.['secret']
  if (typeof secret === 'string' && secret.length < MIN_SECRET_LENGTH) {
    warnings.push(`the token secret is shorter than ${MIN_SECRET_LENGTH} characters; anyone holding one token can guess it offline`)
  }

  return {
    port,
    host,
    engine,
    redisUrl,
    redis,
    workers,
    transport,
    wsPort,
    pidFile,
    metricsPort,
    metricsAuth,
    http,
    logLevel,
    logFormat,
    drainMs,
    proxyProtocol,
    apiKey,
    adminSecret,
    configFile,
    holdfast: holdfast as HoldfastOptions,
    auth,
    sources,
    warnings,
  }
}
