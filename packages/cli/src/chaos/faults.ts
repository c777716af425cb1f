/**
 * The fault configuration of a ChaosProxy: what it is, its defaults, and the one function that
 * validates a patch. The proxy, the HTTP control API and the CLI all go through
 * `applyFaultPatch`, so a value is checked in one place and every caller gets the same message.
 */

/** Faults applied to one direction of every connection. */
export interface DirectionFaults {
  /** Delay added to every chunk, in ms. @default 0 */
  latencyMs: number
  /**
   * Each chunk's delay is latencyMs plus a uniform random amount in [-jitterMs, +jitterMs]
   * (never below zero). A chunk is never delivered before the one read before it. @default 0
   */
  jitterMs: number
  /** Throughput cap in bytes per second (token bucket); 0 means unlimited. @default 0 */
  bandwidthBytesPerSec: number
  /** Split each chunk into writes of at most this many bytes; 0 means off. @default 0 */
  sliceBytes: number
  /** Pause between two slices of one chunk, in ms (so the reader sees them apart). @default 0 */
  sliceDelayMs: number
  /**
   * Once this many bytes went this way, forward exactly up to the limit, then close the
   * connection (FIN both ways). 0 means off. @default 0
   */
  closeAfterBytes: number
  /** Forward nothing this way and send no FIN or RST either (half-open). @default false */
  blackhole: boolean
}

/**
 * What happens to bytes that arrive while a direction is blackholed.
 * - `drop`: they are read and thrown away, as Toxiproxy's `timeout` toxic does; after healing,
 *   forwarding resumes with the bytes that arrive from then on, so a stream that lost bytes is
 *   corrupt (a WebSocket peer sees a protocol error). Senders see no back-pressure.
 * - `hold`: the proxy stops reading, so the sender's buffers fill as in a real partition, and
 *   after healing everything is delivered late but complete and in order.
 */
export const BLACKHOLE_MODES = ['drop', 'hold'] as const
export type BlackholeMode = (typeof BLACKHOLE_MODES)[number]

/** The whole fault configuration. `upstream` is client → target, `downstream` target → client. */
export interface FaultConfig {
  upstream: DirectionFaults
  downstream: DirectionFaults
  /** Chance that a connection is reset (RST both ways) during each second it is open, 0–1. @default 0 */
  resetProbability: number
  /** Chance that a new connection is refused (RST right after accept), 0–1. @default 0 */
  dropProbability: number
  /** See BlackholeMode. @default 'drop' */
  blackholeMode: BlackholeMode
}

/**
 * A partial FaultConfig. Direction fields at the top level apply to both directions; the same
 * field inside `upstream` or `downstream` applies to that direction only and wins over the
 * top-level one.
 */
export type FaultPatch = Partial<DirectionFaults> & {
  upstream?: Partial<DirectionFaults>
  downstream?: Partial<DirectionFaults>
  resetProbability?: number
  dropProbability?: number
  blackholeMode?: BlackholeMode
}

export const DIRECTIONS = ['upstream', 'downstream'] as const
export type Direction = (typeof DIRECTIONS)[number]

export const DIRECTION_DEFAULTS: Readonly<DirectionFaults> = Object.freeze({
  latencyMs: 0,
  jitterMs: 0,
  bandwidthBytesPerSec: 0,
  sliceBytes: 0,
  sliceDelayMs: 0,
  closeAfterBytes: 0,
  blackhole: false,
})

/** A fresh configuration with no fault at all (what `heal()` restores). */
export function noFaults(): FaultConfig {
  return {
    upstream: { ...DIRECTION_DEFAULTS },
    downstream: { ...DIRECTION_DEFAULTS },
    resetProbability: 0,
    dropProbability: 0,
    blackholeMode: 'drop',
  }
}

export function cloneFaults(f: FaultConfig): FaultConfig {
  return { ...f, upstream: { ...f.upstream }, downstream: { ...f.downstream } }
}

/** Ten minutes: longer delays are a typo, and a timer that long would outlive any test. */
const MAX_DELAY_MS = 600_000

type NumberRule = { min: number; max: number; integer: boolean }

const DIRECTION_RULES: Readonly<Record<keyof DirectionFaults, NumberRule | 'boolean'>> = {
  latencyMs: { min: 0, max: MAX_DELAY_MS, integer: false },
  jitterMs: { min: 0, max: MAX_DELAY_MS, integer: false },
  bandwidthBytesPerSec: { min: 0, max: 1e12, integer: true },
  sliceBytes: { min: 0, max: 2 ** 30, integer: true },
  sliceDelayMs: { min: 0, max: 60_000, integer: false },
  closeAfterBytes: { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true },
  blackhole: 'boolean',
}

const TOP_RULES: Readonly<Record<'resetProbability' | 'dropProbability', NumberRule>> = {
  resetProbability: { min: 0, max: 1, integer: false },
  dropProbability: { min: 0, max: 1, integer: false },
}

const DIRECTION_KEYS = Object.keys(DIRECTION_RULES) as (keyof DirectionFaults)[]

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function checkNumber(name: string, v: unknown, rule: NumberRule): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < rule.min || v > rule.max || (rule.integer && !Number.isInteger(v))) {
    const kind = rule.integer ? 'an integer' : 'a number'
    throw new TypeError(`${name} must be ${kind} from ${rule.min} to ${rule.max}, got ${JSON.stringify(v) ?? String(v)}`)
  }
  return v
}

function checkDirection(prefix: string, raw: Record<string, unknown>, into: Partial<DirectionFaults>, skip: ReadonlySet<string>): void {
  for (const [key, v] of Object.entries(raw)) {
    if (skip.has(key)) continue
    const rule = DIRECTION_RULES[key as keyof DirectionFaults] as NumberRule | 'boolean' | undefined
    const name = `${prefix}${key}`
    // Typos must fail loudly: a misspelt fault would otherwise just not happen.
    if (rule === undefined) throw new TypeError(`unknown field "${name}"`)
    if (rule === 'boolean') {
      if (typeof v !== 'boolean') throw new TypeError(`${name} must be true or false, got ${JSON.stringify(v) ?? String(v)}`)
      ;(into as Record<string, unknown>)[key] = v
    } else {
      ;(into as Record<string, unknown>)[key] = checkNumber(name, v, rule)
    }
  }
}

const TOP_LEVEL_ONLY = new Set(['upstream', 'downstream', 'resetProbability', 'dropProbability', 'blackholeMode'])

/**
 * Validate `patch` completely, then return `current` with it applied (a new object; `current`
 * is not touched). A bad patch changes nothing and throws a TypeError naming the field, e.g.
 * `upstream.latencyMs must be a number from 0 to 600000, got "fast"`.
 */
export function applyFaultPatch(current: FaultConfig, patch: unknown): FaultConfig {
  if (!isPlainObject(patch)) throw new TypeError(`faults must be a JSON object, got ${JSON.stringify(patch) ?? String(patch)}`)
  const both: Partial<DirectionFaults> = {}
  checkDirection('', patch, both, TOP_LEVEL_ONLY)
  const perDirection: Record<Direction, Partial<DirectionFaults>> = { upstream: {}, downstream: {} }
  for (const dir of DIRECTIONS) {
    const raw = patch[dir]
    if (raw === undefined) continue
    if (!isPlainObject(raw)) throw new TypeError(`${dir} must be an object of ${DIRECTION_KEYS.join(', ')}`)
    checkDirection(`${dir}.`, raw, perDirection[dir], new Set())
  }
  const next = cloneFaults(current)
  for (const key of ['resetProbability', 'dropProbability'] as const) {
    if (patch[key] !== undefined) next[key] = checkNumber(key, patch[key], TOP_RULES[key])
  }
  const mode = patch['blackholeMode']
  if (mode !== undefined) {
    if (!(BLACKHOLE_MODES as readonly unknown[]).includes(mode)) {
      throw new TypeError(`blackholeMode must be one of ${BLACKHOLE_MODES.join(', ')}, got ${JSON.stringify(mode) ?? String(mode)}`)
    }
    next.blackholeMode = mode as BlackholeMode
  }
  for (const dir of DIRECTIONS) next[dir] = { ...next[dir], ...both, ...perDirection[dir] }
  return next
}
