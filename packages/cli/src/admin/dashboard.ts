import type { HoldfastOptions } from '@holdfast/server'
import { AdminIdentity } from './admin-identity.js'
import { deriveKey, SecretCheck } from './keys.js'
import { LoginLimiter, type LoginLimiterOptions } from './login-limiter.js'
import { SessionCookies } from './session-cookie.js'

export interface AdminDashboardOptions {
  /** The admin secret (`--admin-secret`): the login password, and the root of every dashboard key. */
  secret: string
  /** Options of the gateway the dashboard watches; the dashboard adds its hooks to them (see `serverOptions`). @default {} */
  server?: HoldfastOptions
  /** Lifetime of a login (the session cookie), in ms. @default 28800000 (8 h) */
  sessionTtlMs?: number
  /** Lifetime of the page's connection tokens, in ms; the page refreshes them before they run out. @default 600000 (10 min) */
  tokenTtlMs?: number
  /** Pause before answering a wrong secret, in ms: slows guessing down further. @default 1000 */
  failureDelayMs?: number
  /** Login attempts per client address. @default { burst: 5, refillMs: 12000 } */
  login?: LoginLimiterOptions
  /** How often each node publishes its numbers, in ms. @default 1000 */
  statsIntervalMs?: number
}

export const DEFAULTS = {
  sessionTtlMs: 8 * 3600_000,
  tokenTtlMs: 600_000,
  failureDelayMs: 1000,
  statsIntervalMs: 1000,
} as const

/** Shorter admin secrets draw a startup warning: the login is the only thing between them and the fleet. */
export const MIN_SECRET_LENGTH = 16

function positiveInt(name: string, v: unknown, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || (!allowZero && v === 0)) {
    throw new TypeError(`holdfast admin: option "${name}" must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${String(v)}`)
  }
  return v
}

/**
 * Everything the dashboard needs besides HTTP routes: the secret check, session cookies, login
 * limits, and the admin identity the page uses on the WebSocket. Create it before the gateway and
 * create the gateway with `serverOptions`, which carry the hooks that reserve `$admin:` channels
 * for the admin user (and, when needed, accept the admin's feed tokens).
 *
 * ```ts
 * const admin = new AdminDashboard({ secret, server: options })
 * const holdfast = createHoldfast(admin.serverOptions)
 * await app.register(adminRoutes, { holdfast, admin })
 * ```
 */
export class AdminDashboard {
  readonly identity: AdminIdentity
  readonly sessions: SessionCookies
  readonly limiter: LoginLimiter
  readonly secretCheck: SecretCheck
  readonly failureDelayMs: number
  readonly statsIntervalMs: number
  /** Things to tell the operator at startup (the plugin logs them). */
  readonly warnings: string[] = []

  constructor(opts: AdminDashboardOptions) {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('holdfast admin: options must be an object')
    const { secret } = opts
    if (typeof secret !== 'string' || secret === '') throw new TypeError('holdfast admin: option "secret" must be a non-empty string')
    const sessionTtlMs = positiveInt('sessionTtlMs', opts.sessionTtlMs ?? DEFAULTS.sessionTtlMs)
    const tokenTtlMs = positiveInt('tokenTtlMs', opts.tokenTtlMs ?? DEFAULTS.tokenTtlMs)
    // Below a few seconds a feed token would expire before the page could use it.
    if (tokenTtlMs < 5000) throw new TypeError(`holdfast admin: option "tokenTtlMs" must be at least 5000, got ${tokenTtlMs}`)
    this.failureDelayMs = positiveInt('failureDelayMs', opts.failureDelayMs ?? DEFAULTS.failureDelayMs, true)
    this.statsIntervalMs = positiveInt('statsIntervalMs', opts.statsIntervalMs ?? DEFAULTS.statsIntervalMs)
    this.secretCheck = new SecretCheck(secret)
    this.sessions = new SessionCookies(deriveKey(secret, 'session cookie'), sessionTtlMs)
    this.limiter = new LoginLimiter(opts.login)
    this.identity = new AdminIdentity(secret, opts.server ?? {}, tokenTtlMs)
    if (secret.length < MIN_SECRET_LENGTH) {
      this.warnings.push(`the admin secret is shorter than ${MIN_SECRET_LENGTH} characters: use a long random one (it guards the whole fleet)`)
    }
  }

  /** The gateway options to create the gateway with: the given ones plus the admin hooks. */
  get serverOptions(): HoldfastOptions {
    return this.identity.serverOptions
  }
}
