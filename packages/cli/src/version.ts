import { readFileSync } from 'node:fs'

/** Read from package.json at run time: src/ and dist/ sit at the same depth, so one path serves both. */
export function cliVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown }
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0'
}
