#!/usr/bin/env node
// Writes the browser builds to packages/client/dist/browser/: holdfast.js (ESM; MessagePack and
// storage in chunks loaded on demand), holdfast.global.js (script tag: window.Holdfast) and
// holdfast-msgpack.global.js (window.HoldfastMsgpack, for `protocol: 'msgpack'` with a script tag).
import { fileURLToPath } from 'node:url'
import { buildBrowserBundles } from './bundles.mjs'

const out = fileURLToPath(new URL('../dist/browser/', import.meta.url))
const s = await buildBrowserBundles(out)
const kb = (n) => `${(n / 1024).toFixed(1)} KB`
console.log(`dist/browser: holdfast.js ${kb(s.esm.gzip)} gzip at load (${s.esm.files} files), holdfast.global.js ${kb(s.iife.gzip)}, holdfast-msgpack.global.js ${kb(s.msgpackGlobal.gzip)}`)
