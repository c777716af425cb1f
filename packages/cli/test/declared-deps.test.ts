// Every package a workspace imports is declared in that workspace's package.json: a hoisted
// node_modules hides a missing declaration in a checkout, and the published package then fails
// at the import. Also: `holdfast --version` loads none of the commands' code.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { builtinModules } from 'node:module'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { ROOT } from './helpers.js'

const WORKSPACES = ['packages/protocol', 'packages/server', 'packages/client', 'packages/cli', 'bench']
/** Folders whose files ship or run as that workspace's code (tests may use the root's devDependencies). */
const CODE_DIRS: Readonly<Record<string, string[]>> = {
  'packages/protocol': ['src'],
  'packages/server': ['src'],
  'packages/client': ['src'],
  'packages/cli': ['src', 'scripts', 'bin', 'demo', 'admin'],
  bench: ['.'],
}

function files(dir: string, out: string[] = []): string[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return out
  }
  for (const name of names) {
    if (name === 'node_modules' || name === 'dist' || name === 'results') continue
    const full = join(dir, name)
    if (statSync(full).isDirectory()) files(full, out)
    else if (/\.(ts|mts|mjs|js)$/.test(name) && !name.endsWith('.d.ts')) out.push(full)
  }
  return out
}

/** The package name of every bare import (static, dynamic and `import type`) in a file. */
function importedPackages(source: string): Set<string> {
  const out = new Set<string>()
  // Only code, not prose: `import … from 'x'` / `export … from 'x'` / `import 'x'` at a line start, and `import('x')`.
  const re = /(?:^\s*(?:import|export)\b[^'"\n]*?\bfrom\s+|^\s*import\s+|\bimport\s*\(\s*)['"]([^'"./][^'"]*)['"]/gm
  for (const m of source.matchAll(re)) {
    const spec = m[1] as string
    // '#...': the package's own subpath imports (package.json "imports"), not a dependency.
    if (spec.startsWith('#') || spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0] as string)) continue
    const parts = spec.split('/')
    out.add(spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] as string))
  }
  return out
}

describe('declared dependencies', () => {
  for (const ws of WORKSPACES) {
    test(`${ws}: every package imported by its code is in its package.json`, () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, ws, 'package.json'), 'utf8')) as Record<string, Record<string, string> | string>
      const declared = new Set<string>([pkg['name'] as string])
      for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'devDependencies']) {
        for (const name of Object.keys((pkg[field] as Record<string, string> | undefined) ?? {})) declared.add(name)
      }
      const missing: string[] = []
      for (const dir of CODE_DIRS[ws] ?? []) {
        for (const file of files(join(ROOT, ws, dir))) {
          // Browser bundles (demo/, admin/) are built by esbuild from the root's devDependencies.
          for (const name of importedPackages(readFileSync(file, 'utf8'))) if (!declared.has(name)) missing.push(`${name} (${file.slice(ROOT.length)})`)
        }
      }
      assert.deepEqual(missing, [])
    })
  }
})

describe('the CLI loads a command only when it runs', () => {
  test('`holdfast --version` loads no command code: no Fastify, gateway, Redis client, bench or chaos', () => {
    // The heavy dependencies are CommonJS: at exit, the shared require cache lists every one loaded.
    const probe = `data:text/javascript,${encodeURIComponent(
      "import { createRequire } from 'node:module'; const r = createRequire(process.cwd() + '/'); " +
        "process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify(Object.keys(r.cache)) + '\\n'))",
    )}`
    const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--import', probe, join(ROOT, 'packages/cli/src/bin.ts'), '--version'], { cwd: ROOT, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    const loaded = JSON.parse(/LOADED (.*)/.exec(r.stderr)?.[1] ?? '[]') as string[]
    const forbidden = ['fastify', 'hdr-histogram-js', 'cli-progress', 'ioredis', 'opossum', 'pino', 'ws', 'prom-client', 'socket.io', '@fastify/static']
    const hits = loaded.filter((f) => forbidden.some((name) => f.includes(`/node_modules/${name}/`)))
    assert.deepEqual(hits, [])
    // The same process with `serve --help` still prints the flags (help is loaded on demand too).
    const help = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(ROOT, 'packages/cli/src/bin.ts'), 'serve', '--help'], { cwd: ROOT, encoding: 'utf8' })
    assert.match(help.stdout, /--metrics-port PORT/)
    // And the probe does see a command's dependencies when one runs: the check can fail.
    const bench = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--import', probe, join(ROOT, 'packages/cli/src/bin.ts'), 'bench', '--connections', 'x'], { cwd: ROOT, encoding: 'utf8' })
    const benchLoaded = JSON.parse(/LOADED (.*)/.exec(bench.stderr)?.[1] ?? '[]') as string[]
    assert.ok(benchLoaded.some((f) => f.includes('/node_modules/hdr-histogram-js/')), 'bench loads its histogram library')
  })
})
