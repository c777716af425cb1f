// Browser bundle sizes: holdfast's client beside socket.io-client and centrifuge-js, each bundled
// for the browser by esbuild (minified, ESM, code splitting) as an application would import it,
// measured as what a page loads before the client runs (gzip level 9). Prints a Markdown table.
// Run: node --import tsx bench/bundle-size.ts
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
// @ts-expect-error: a plain .mjs build script without type declarations
import { buildBrowserBundles, measureImport } from '../packages/client/scripts/bundles.mjs'

interface Measured {
  esm: { min: number; gzip: number; files: number }
  chunks: Array<{ file: string; min: number; gzip: number }>
}

const root = fileURLToPath(new URL('..', import.meta.url))
const version = (name: string): string => (JSON.parse(readFileSync(`${root}node_modules/${name}/package.json`, 'utf8')) as { version: string }).version
const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`

const own = (await buildBrowserBundles()) as Measured & { iife: { min: number; gzip: number }; msgpackGlobal: { min: number; gzip: number } }
const rows: Array<[string, number, number, string]> = []
const appImport = (await measureImport("export { HoldfastClient } from '@holdfast/client'", root, ['source'])) as Measured
const chunk = (prefix: string): string => kb(own.chunks.find((c) => c.file.startsWith(prefix))?.gzip ?? 0)
rows.push(['holdfast: `import { HoldfastClient }` (JSON)', appImport.esm.min, appImport.esm.gzip, 'what an app bundles'])
rows.push(['holdfast: dist/browser/holdfast.js (JSON, every export)', own.esm.min, own.esm.gzip, `on demand: MessagePack ${chunk('msgpack-codec')}, storage ${chunk('persistence')}, IndexedDB ${chunk('indexed-db')}, HTTP fallback ${chunk('http-stream')}, discovery ${chunk('discovery')}`])
rows.push(['holdfast: holdfast.global.js (script tag)', own.iife.min, own.iife.gzip, `+ ${kb(own.msgpackGlobal.gzip)} holdfast-msgpack.global.js`])
const io = (await measureImport("export { io } from 'socket.io-client'", root)) as Measured
rows.push([`socket.io-client ${version('socket.io-client')}: \`import { io }\``, io.esm.min, io.esm.gzip, 'JSON (Engine.IO packets), long-polling fallback included'])
const cf = (await measureImport("export { Centrifuge } from 'centrifuge'", root)) as Measured
rows.push([`centrifuge ${version('centrifuge')}: \`import { Centrifuge }\``, cf.esm.min, cf.esm.gzip, 'JSON; Protobuf in a separate entry'])

console.log('| client | minified | gzip | notes |\n| --- | --- | --- | --- |')
for (const [name, min, gz, note] of rows) console.log(`| ${name} | ${kb(min)} | ${kb(gz)} | ${note} |`)
console.log(`\nholdfast (app import) / socket.io-client: ${(appImport.esm.gzip / io.esm.gzip).toFixed(2)}x; / centrifuge: ${(appImport.esm.gzip / cf.esm.gzip).toFixed(2)}x`)
