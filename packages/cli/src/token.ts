import { parseArgs } from 'node:util'
import { mintToken } from '@holdfast/server/internal'
import { CliError } from './cli-error.js'
import { envName } from './config.js'
import { parseDuration } from './duration.js'

/** What `holdfast token` needs, after its flags and HOLDFAST_TOKEN_SECRET are checked. */
export interface TokenRequest {
  secret: string
  sub: string
  ttlSeconds: number
  info?: unknown
  channels?: string[]
}

const OPTIONS = {
  sub: { type: 'string' },
  secret: { type: 'string' },
  ttl: { type: 'string' },
  info: { type: 'string' },
  channels: { type: 'string' },
} as const

/** Parse `holdfast token` arguments. Pure, like resolveServeConfig, so the errors are testable. */
export function resolveTokenRequest(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): TokenRequest {
  let values: { [K in keyof typeof OPTIONS]?: string | undefined }
  try {
    values = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new CliError((err as Error).message, { cause: err })
  }
  const secretEnv = envName('tokenSecret')
  // Same variable as `serve`, so a shell that runs the gateway can mint tokens it accepts.
  const secret = values.secret ?? (env[secretEnv] === '' ? undefined : env[secretEnv])
  if (secret === undefined || secret === '') {
    throw new CliError(`no secret: pass --secret S or set ${secretEnv} (the same secret as "holdfast serve --token-secret")`)
  }
  if (values.sub === undefined || values.sub === '') throw new CliError('--sub USER is required (the user id the token is for)')
  // JWT lifetimes are counted in seconds, so a bare number means seconds here.
  const ttlMs = parseDuration('--ttl', values.ttl ?? '1h', 's')
  if (ttlMs < 1000) throw new CliError(`--ttl must be at least 1s, got "${values.ttl ?? ''}"`)
  const req: TokenRequest = { secret, sub: values.sub, ttlSeconds: Math.round(ttlMs / 1000) }
  if (values.info !== undefined) {
    try {
      req.info = JSON.parse(values.info)
    } catch {
      throw new CliError(`--info must be JSON, e.g. '{"name":"Alice"}', got ${values.info}`)
    }
  }
  if (values.channels !== undefined) {
    const channels = values.channels.split(',').map((c) => c.trim())
    if (channels.some((c) => c === '')) throw new CliError(`--channels must be a comma-separated list of channel names, got "${values.channels}"`)
    req.channels = channels
  }
  return req
}

/** `holdfast token`: print a signed HS256 connection token on stdout (and nothing else, for $(...)). */
export async function runToken(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<void> {
  const req = resolveTokenRequest(argv, env)
  const token = await mintToken({
    secret: req.secret,
    sub: req.sub,
    ttl: req.ttlSeconds,
    ...(req.info !== undefined ? { info: req.info } : {}),
    ...(req.channels !== undefined ? { channels: req.channels } : {}),
  })
  process.stdout.write(`${token}\n`)
}
