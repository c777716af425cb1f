// No module of a package's src imports itself back through others (type-only imports count too):
// each package's import graph, as madge reads it with the repository's TypeScript settings, has
// no cycle. Imports of other packages (`@holdfast/*`) are not followed: each package is checked
// on its own.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import madge from 'madge'

const root = fileURLToPath(new URL('..', import.meta.url))
const PACKAGES = ['protocol', 'server', 'client', 'react', 'cli']

describe('import cycles', () => {
  for (const name of PACKAGES) {
    it(`packages/${name}/src has none`, async () => {
      const graph = await madge(`packages/${name}/src`, {
        baseDir: root,
        fileExtensions: ['ts', 'tsx'],
        tsConfig: `${root}tsconfig.base.json`,
        detectiveOptions: { ts: { skipTypeImports: false }, tsx: { skipTypeImports: false } },
      })
      assert.ok(Object.keys(graph.obj()).length > 3, `madge read packages/${name}/src`)
      assert.deepEqual(graph.circular(), [], `import cycles in packages/${name}/src`)
    })
  }
})
