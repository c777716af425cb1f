// Every ```ts block of the README, docs/ and the packages' READMEs is type-checked the way a
// user's project would compile it: `tsc --strict`, NodeNext modules, the workspace packages by
// their names. A block may be a fragment that uses the reader's own names (`client`, `render`,
// `app`), so "cannot find name" and what follows from it (an implicit any) are allowed; every
// other error (a member that does not exist, an option of the wrong type, a module that cannot be
// imported) fails, with the doc file and line.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

const ROOT = new URL('../..', import.meta.url).pathname
// Inside the repository, so that the snippets resolve the workspace packages from node_modules.
const CACHE = join(ROOT, 'node_modules/.cache')
/** Undeclared names in a fragment, and the implicit anys that follow from them. */
const FRAGMENT_ERRORS = new Set(['TS2304', 'TS18004', 'TS7006', 'TS2552'])

function docs(): string[] {
  const list = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
  for (const pkg of readdirSync(join(ROOT, 'packages'))) list.push(`packages/${pkg}/README.md`)
  return list.filter((f) => {
    try {
      readFileSync(join(ROOT, f))
      return true
    } catch {
      return false
    }
  })
}

interface Snippet {
  file: string
  doc: string
  line: number
}

test('the TypeScript blocks of the docs compile under tsc --strict', { timeout: 120_000 }, (t) => {
  mkdirSync(CACHE, { recursive: true })
  const dir = mkdtempSync(join(CACHE, 'doc-snippets-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const snippets: Snippet[] = []
  for (const doc of docs()) {
    const text = readFileSync(join(ROOT, doc), 'utf8')
    for (const m of text.matchAll(/^```ts\n([\s\S]*?)^```/gm)) {
      const line = text.slice(0, m.index).split('\n').length + 1
      const file = `${doc.replaceAll('/', '_').replace(/\.md$/, '')}_L${line}.ts`
      // `export {}` makes every block a module of its own (top-level await, no shared globals).
      writeFileSync(join(dir, file), `${m[1]}\nexport {}\n`)
      snippets.push({ file, doc, line })
    }
  }
  assert.ok(snippets.length >= 10, `only ${snippets.length} TypeScript blocks found`)
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        lib: ['ES2023', 'DOM', 'DOM.Iterable'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        customConditions: ['source'],
        skipLibCheck: true,
        types: ['node'],
      },
      include: ['*.ts'],
    }),
  )
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir, '--pretty', 'false'], { encoding: 'utf8' })
  const errors = tsc.stdout
    .split('\n')
    .map((l) => /^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && !FRAGMENT_ERRORS.has(m[3] as string))
    .map((m) => {
      const s = snippets.find((x) => (m[1] as string).endsWith(x.file))
      return `${s?.doc ?? m[1]}:${(s?.line ?? 0) + Number(m[2]) - 1}: ${m[3]} ${m[4]}`
    })
  assert.deepEqual(errors, [], `doc snippets that do not compile:\n${errors.join('\n')}`)
  assert.ok(tsc.status === 0 || tsc.stdout.includes('error TS'), `tsc did not run: ${tsc.stderr}`)
})
