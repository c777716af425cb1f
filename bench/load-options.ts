/** The load options the client-process benches share (test/operations/load.ts), and a number reader for parseArgs values. */
export const LOAD_OPTIONS = {
  clients: { type: 'string', default: '2000' },
  channels: { type: 'string', default: '40' },
  rate: { type: 'string', default: '200' },
  publishers: { type: 'string', default: '4' },
  processes: { type: 'string', default: '2' },
} as const

/** `--name` as a non-negative number, or a TypeError naming the flag. */
export function num(values: Readonly<Record<string, unknown>>, name: string): number {
  const v = Number(values[name])
  if (!Number.isFinite(v) || v < 0) throw new TypeError(`--${name} must be a number, got ${String(values[name])}`)
  return v
}
