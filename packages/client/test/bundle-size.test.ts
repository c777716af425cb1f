// The browser bundle's budget (CI fails past it): the JSON client, as a page loads it before it
// runs (the entry and its static chunks, gzip), stays within BUDGET_GZIP_BYTES; MessagePack, the
// storage code, the IndexedDB store, the HTTP-streaming fallback and discovery stay in chunks
// loaded on demand; nothing from Node (node:fs) gets in. The comparison with socket.io-client and centrifuge-js is a benchmark: bench/bundle-size.ts.
import assert from 'node:assert/strict'
import { test } from 'node:test'
// @ts-expect-error: a plain .mjs build script without type declarations
import { BUDGET_GZIP_BYTES, buildBrowserBundles } from '../scripts/bundles.mjs'

interface Sizes {
  esm: { min: number; gzip: number; files: number; inputs: string[] }
  chunks: Array<{ file: string; min: number; gzip: number }>
  iife: { min: number; gzip: number }
  msgpackGlobal: { min: number; gzip: number }
}

test(`the JSON browser client is at most ${BUDGET_GZIP_BYTES} bytes gzip at load; MessagePack, storage, IndexedDB, the HTTP fallback and discovery load on demand`, async () => {
  const s = (await buildBrowserBundles()) as Sizes
  console.log(`# holdfast.js at load: ${s.esm.min} B min, ${s.esm.gzip} B gzip in ${s.esm.files} files; chunks: ${s.chunks.map((c) => `${c.file} ${c.gzip} B`).join(', ')}; holdfast.global.js ${s.iife.gzip} B`)
  assert.ok(s.esm.gzip <= BUDGET_GZIP_BYTES, `the client grew past its budget: ${s.esm.gzip} > ${BUDGET_GZIP_BYTES} bytes gzip (see docs/benchmarks.md, "Browser bundle")`)
  const onDemand = ['@msgpack', 'msgpack-codec', 'persistence', '/indexed-db.ts', 'http-stream', 'discovery']
  assert.deepEqual(s.esm.inputs.filter((i) => onDemand.some((d) => i.includes(d))), [], 'loaded on demand only')
  assert.deepEqual(s.esm.inputs.filter((i) => i.includes('file-storage.node')), [], 'no Node code in the browser build')
  assert.ok(s.chunks.some((c) => c.file.startsWith('msgpack-codec')), 'MessagePack is a chunk of its own')
  for (const name of ['persistence', 'indexed-db', 'http-stream', 'discovery']) assert.ok(s.chunks.some((c) => c.file.startsWith(name)), `${name} is a chunk of its own`)
  assert.ok(s.iife.gzip > s.esm.gzip, 'the script-tag build carries everything but MessagePack')
})
