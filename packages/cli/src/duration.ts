import { CliError } from './cli-error.js'

const UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/

/**
 * Parse a duration such as `500ms`, `25s`, `10m`, `1h`, `7d` into milliseconds.
 * A bare number is taken in `bareUnit`: milliseconds for server timings (they map to `*Ms`
 * options), seconds for token lifetimes (as JWT `exp` is counted). The result is rounded to whole
 * milliseconds so that it can feed integer options.
 */
export function parseDuration(name: string, raw: string, bareUnit: 'ms' | 's' = 'ms'): number {
  const m = DURATION_RE.exec(raw.trim())
  if (m === null || m[1] === undefined) {
    throw new CliError(`${name} must be a duration such as 500ms, 25s, 10m or 1h, got "${raw}"`)
  }
  const unit = (m[2] ?? bareUnit) as keyof typeof UNITS_MS
  const ms = Math.round(Number(m[1]) * UNITS_MS[unit])
  if (!Number.isSafeInteger(ms)) throw new CliError(`${name} is too large: "${raw}"`)
  return ms
}
