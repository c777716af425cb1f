// The benchmarks import holdfast's packages and its test harness by name (`@holdfast/server`,
// `@holdfast/testkit/support/redis-server`, ...), never by a relative path that leaves bench/:
// a bench reaching into a package's src or a test folder measures code no user runs, and breaks
// silently when that folder moves. TypeScript's own import scanner reads the specifiers.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = fileURLToPath(new URL('..', import.meta.url))
const benchDir = join(root, 'bench')

/**
 * The one import that leaves bench/ on purpose: the bundle-size bench builds the client with the
 * client package's own build settings (packages/client/scripts/bundles.mjs, a build script the
 * package does not publish), so that the bench measures exactly what the package ships.
 */
const ALLOWED = new Set(['bench/bundle-size.ts -> packages/client/scripts/bundles.mjs'])

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name)
    if (name === 'node_modules' || name === 'results') continue
    if (statSync(full).isDirectory()) sources(full, out)
    else if (/\.(ts|mts|mjs|js)$/.test(name)) out.push(full)
  }
  return out
}

describe('bench imports', () => {
  const files = sources(benchDir)

  it('finds the benches', () => {
    assert.ok(files.length > 10, `read ${files.length} files under bench/`)
  })

  it('never reach out of bench/ by a relative path', () => {
    const escaping: string[] = []
    for (const file of files) {
      const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
      for (const { fileName: spec } of importedFiles) {
        if (!spec.startsWith('.')) continue
        const target = resolve(dirname(file), spec)
        if (target === benchDir || target.startsWith(benchDir + '/')) continue
        const edge = `${relative(root, file)} -> ${relative(root, target)}`
        if (!ALLOWED.has(edge)) escaping.push(edge)
      }
    }
    assert.deepEqual(escaping, [], 'import these by package name (@holdfast/*, @holdfast/testkit/...)')
  })
})
