#!/usr/bin/env node
// Bundles the chat demo served by `holdfast serve` at `/`: packages/cli/demo/main.ts (and the
// client SDK it imports, from its TypeScript source) → packages/cli/public/demo.js + demo.js.map;
// and the admin dashboard at `/admin`: packages/cli/admin/main.ts → public/admin/admin.js (+ .map),
// with uPlot's stylesheet copied to public/admin/uplot.css.
// Called by the root `npm run build` after tsc, and by the browser test before it starts.
//
// Fast: one esbuild call (tens of ms), no type-check here (`npx tsc -p packages/cli/demo` does that,
// and the browser test runs it). Deterministic: same sources → same bytes (no timestamps, relative
// source-map paths); files are replaced atomically and left untouched when unchanged, so a running
// server never serves half a bundle and concurrent builds do not trip over each other.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const cli = fileURLToPath(new URL('..', import.meta.url))

/** Each bundle: its entry, its output, and the page that loads it (a bundle without its page is a mistake). */
const BUNDLES = [
  { entry: 'demo/main.ts', out: 'public/demo.js', page: 'public/index.html', url: '/' },
  { entry: 'admin/main.ts', out: 'public/admin/admin.js', page: 'public/admin/index.html', url: '/admin' },
]

for (const b of BUNDLES) {
  if (!existsSync(`${cli}${b.page}`)) {
    console.error(`build-demo: missing ${cli}${b.page}; "holdfast serve" would answer 404 at ${b.url}`)
    process.exit(1)
  }
}

async function bundle({ entry, out }) {
  const outfile = `${cli}${out}`
  const started = performance.now()
  let result
  try {
    result = await build({
      absWorkingDir: cli,
      entryPoints: [entry],
      outfile,
      bundle: true,
      write: false,
      // A browser bundle: a Node-only import (node:*, ws, ...) fails the build instead of shipping.
      platform: 'browser',
      format: 'iife',
      target: ['es2022'],
      // Workspace packages resolve to their sources (their "source" export), so no tsc build is needed first.
      conditions: ['source'],
      minify: true,
      sourcemap: 'linked',
      legalComments: 'none',
      charset: 'utf8',
      logLevel: 'silent',
    })
  } catch (err) {
    const errors = err?.errors ?? []
    for (const e of errors) {
      const where = e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ` : ''
      console.error(`build-demo: ${where}${e.text}`)
    }
    if (errors.length === 0) console.error(err)
    process.exit(1)
  }
  for (const w of result.warnings) console.warn(`build-demo: warning: ${w.location?.file ?? ''} ${w.text}`)

  let changed = 0
  let bytes = 0
  for (const file of result.outputFiles) {
    if (file.path.endsWith('.js')) bytes = file.contents.byteLength
    let same = false
    try {
      same = Buffer.compare(readFileSync(file.path), file.contents) === 0
    } catch {
      // Not there yet.
    }
    if (same) continue
    const tmp = `${file.path}.${process.pid}.tmp`
    writeFileSync(tmp, file.contents)
    renameSync(tmp, file.path)
    changed++
  }
  const ms = Math.round(performance.now() - started)
  console.log(`build-demo: ${out} ${(bytes / 1024).toFixed(1)} KiB ${changed === 0 ? 'unchanged' : 'written'} in ${ms} ms`)
}

for (const b of BUNDLES) await bundle(b)

// uPlot's stylesheet for the dashboard's charts (the bundle has its script): a file of its own,
// served at /admin/uplot.css, since the page's CSP allows no inline style.
{
  const from = fileURLToPath(import.meta.resolve('uplot/dist/uPlot.min.css'))
  const to = `${cli}public/admin/uplot.css`
  const css = readFileSync(from)
  let same = false
  try {
    same = Buffer.compare(readFileSync(to), css) === 0
  } catch {
    // Not there yet.
  }
  if (!same) {
    writeFileSync(`${to}.${process.pid}.tmp`, css)
    renameSync(`${to}.${process.pid}.tmp`, to)
  }
}
