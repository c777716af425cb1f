#!/usr/bin/env node
// Called by the root `npm run build` after tsc. The demo page served by `holdfast serve` lives in
// packages/cli/public/. Today it is a static placeholder, so this only checks it is there; when the
// chat demo lands with the client SDK this is where it gets bundled (esbuild) into public/.
import { existsSync } from 'node:fs'

const index = new URL('../public/index.html', import.meta.url)
if (!existsSync(index)) {
  console.error(`build-demo: missing ${index.pathname}; "holdfast serve" would answer 404 at /`)
  process.exit(1)
}
console.log('build-demo: public/index.html present (static page, nothing to bundle yet)')
