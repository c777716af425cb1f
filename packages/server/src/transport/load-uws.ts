import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

export type Uws = typeof import('@trufflesuite/uws-js-unofficial')

/** The packages tried, in order: the npm mirror, then a user-installed `uWebSockets.js` (from GitHub). */
export const UWS_PACKAGES = ['@trufflesuite/uws-js-unofficial', 'uWebSockets.js'] as const

/**
 * Load uWebSockets.js, or say why it cannot be loaded. Synchronous `require` on purpose: uWS is a
 * CommonJS native addon, and callers import this module dynamically only when uWS is chosen.
 */
export function loadUws(): { uws: Uws; name: string } | { error: string } {
  const require = createRequire(import.meta.url)
  const errors: string[] = []
  for (const name of UWS_PACKAGES) {
    try {
      // The npm mirror does not throw when it has no native binary for this Node ABI: it falls
      // back to a JavaScript imitation, which is not uWebSockets.js (no native fan-out, other
      // semantics). Check for the binary first, so the imitation is never used.
      const binaries = join(dirname(require.resolve(`${name}/package.json`)), 'binaries')
      const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`
      if (existsSync(binaries) && !existsSync(join(binaries, binary))) {
        errors.push(`${name}: no native binary ${binary} for Node ${process.version} (ABI ${process.versions.modules})`)
        continue
      }
      return { uws: require(name) as Uws, name }
    } catch (err) {
      errors.push(`${name}: ${(err as Error).message.split('\n')[0] ?? ''}`)
    }
  }
  return { error: errors.join('; ') }
}
