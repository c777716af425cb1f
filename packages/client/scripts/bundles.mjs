// The browser builds of @holdfast/client, and how big they are. Used by build-browser.mjs (writes
// dist/browser/), by test/bundle-size.test.ts (the budget) and by bench/bundle-size.ts (beside
// socket.io-client and centrifuge-js). Sizes are gzip level 9 of the minified files.
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const src = (path) => fileURLToPath(new URL(`../src/${path}`, import.meta.url))
const protocolSrc = (path) => fileURLToPath(new URL(`../../protocol/src/${path}`, import.meta.url))

/** The most the JSON client may weigh (entry plus the chunks it loads at once, gzip): CI fails past it. */
export const BUDGET_GZIP_BYTES = 13_800

const common = {
  bundle: true,
  minify: true,
  platform: 'browser',
  target: 'es2022',
  // Build from the sources: the browser bundles do not wait for tsc.
  conditions: ['source'],
  legalComments: 'none',
  logLevel: 'silent',
}

/** In the script-tag build the MessagePack codec comes from its own script, not a chunk. */
const globalMsgpack = {
  name: 'holdfast-global-msgpack',
  setup(b) {
    b.onResolve({ filter: /\/msgpack-loader\.js$/ }, () => ({ path: src('msgpack-loader.global.ts') }))
  },
}

const gzip = (bytes) => gzipSync(bytes, { level: 9 }).length

/**
 * Build every browser artefact, in memory; with `outdir` the files are also written there. Sizes:
 * `esm` is what a page loads before the client runs (the entry and its static chunks), `chunks`
 * the parts loaded on demand (MessagePack, storage, IndexedDB, the HTTP fallback, discovery),
 * `iife` the script-tag build (everything but MessagePack, which is `msgpackGlobal`).
 */
export async function buildBrowserBundles(outdir) {
  const dir = resolve(outdir ?? 'dist/browser')
  const esm = await build({
    ...common,
    entryPoints: { holdfast: src('index.ts') },
    format: 'esm',
    splitting: true,
    outdir: dir,
    chunkNames: 'chunks/[name]-[hash]',
    metafile: true,
    write: false,
  })
  const iife = await build({ ...common, entryPoints: { 'holdfast.global': src('index.ts') }, format: 'iife', globalName: 'Holdfast', outdir: dir, plugins: [globalMsgpack], write: false })
  const msgpack = await build({ ...common, entryPoints: { 'holdfast-msgpack.global': protocolSrc('msgpack-codec.ts') }, format: 'iife', globalName: 'HoldfastMsgpack', outdir: dir, write: false })
  if (outdir !== undefined) {
    await rm(dir, { recursive: true, force: true })
    for (const f of [...esm.outputFiles, ...iife.outputFiles, ...msgpack.outputFiles]) {
      await mkdir(dirname(f.path), { recursive: true })
      await writeFile(f.path, f.contents)
    }
  }
  const single = (r) => ({ min: r.outputFiles[0].contents.byteLength, gzip: gzip(r.outputFiles[0].contents) })
  return { ...measureEsm(esm), iife: single(iife), msgpackGlobal: single(msgpack) }
}

/** Sizes of an ESM build with code splitting: what loads at once, and each chunk loaded on demand. */
export function measureEsm(result, entryName = 'holdfast.js') {
  const outputs = result.metafile.outputs
  const contents = new Map(result.outputFiles.map((f) => [relative(process.cwd(), f.path), f.contents]))
  const entry = Object.keys(outputs).find((k) => k.endsWith(`/${entryName}`) || k === entryName)
  if (entry === undefined) throw new Error(`no ${entryName} in the build`)
  const statics = new Set([entry])
  const queue = [entry]
  while (queue.length > 0) {
    for (const imp of outputs[queue.pop()].imports) {
      if (imp.kind === 'import-statement' && !imp.external && !statics.has(imp.path)) {
        statics.add(imp.path)
        queue.push(imp.path)
      }
    }
  }
  const sizes = (k) => {
    const c = contents.get(k)
    return c === undefined ? { min: 0, gzip: 0 } : { min: c.byteLength, gzip: gzip(c) }
  }
  let min = 0
  let gz = 0
  const inputs = new Set()
  for (const k of statics) {
    min += sizes(k).min
    gz += sizes(k).gzip
    for (const i of Object.keys(outputs[k].inputs)) inputs.add(i)
  }
  const chunks = Object.keys(outputs)
    .filter((k) => !statics.has(k) && k.endsWith('.js'))
    .map((k) => ({ file: k.replace(/^.*\//, ''), ...sizes(k) }))
  return { esm: { min, gzip: gz, files: statics.size, inputs: [...inputs] }, chunks }
}

/** Bundle one import (an npm package, say) for the browser as an app would, and measure it the same way. */
export async function measureImport(contents, resolveDir, conditions = []) {
  const result = await build({
    ...common,
    conditions,
    stdin: { contents, resolveDir, loader: 'js' },
    format: 'esm',
    splitting: true,
    outdir: resolve('/tmp/holdfast-measure'),
    entryNames: 'holdfast',
    metafile: true,
    write: false,
  })
  return measureEsm(result)
}
