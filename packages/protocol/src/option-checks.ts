/**
 * Option validation shared by the holdfast packages (server, engines, client): every bad option
 * throws a TypeError that names it, in one wording. Not part of the public API.
 */
export interface OptionChecks {
  positiveInt(name: string, v: unknown): number
  nonNegativeInt(name: string, v: unknown): number
  positiveNumber(name: string, v: unknown): number
  nonNegativeNumber(name: string, v: unknown): number
  bool(name: string, v: unknown): boolean
  fn<T>(name: string, v: T): T
  /** A TypeError in the shared wording, for checks the helpers above do not cover. */
  bad(name: string, what: string, v: unknown): TypeError
}

/** Checks whose messages start with `prefix` (e.g. 'holdfast', 'holdfast client'). */
export function optionChecks(prefix: string): OptionChecks {
  const bad = (name: string, what: string, v: unknown): TypeError => {
    const shown = typeof v === 'string' ? JSON.stringify(v) : typeof v === 'function' ? 'a function' : String(v)
    return new TypeError(`${prefix}: option "${name}" must be ${what}, got ${shown}`)
  }
  return {
    bad,
    positiveInt(name, v) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw bad(name, 'a positive integer', v)
      return v
    },
    nonNegativeInt(name, v) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(name, 'a non-negative integer', v)
      return v
    },
    positiveNumber(name, v) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw bad(name, 'a positive number', v)
      return v
    },
    nonNegativeNumber(name, v) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(name, 'a finite number >= 0', v)
      return v
    },
    bool(name, v) {
      if (typeof v !== 'boolean') throw bad(name, 'a boolean', v)
      return v
    },
    fn<T>(name: string, v: T): T {
      if (typeof v !== 'function') throw bad(name, 'a function', v)
      return v
    },
  }
}
