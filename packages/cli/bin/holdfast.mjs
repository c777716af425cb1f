#!/usr/bin/env node
// The `holdfast` command. Runs the built CLI (dist/) when there is one, as in an installed
// package. In a fresh checkout, before `npm run build`, dist/ does not exist yet (and npm makes
// the bin link at install time, before any build): then it runs the TypeScript sources through
// tsx, the way `npm run dev` does, so `npx holdfast …` works from the first minute.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const built = new URL('../dist/bin.js', import.meta.url)
const source = fileURLToPath(new URL('../src/bin.ts', import.meta.url))

if (existsSync(built)) {
  await import(built.href)
} else if (existsSync(source)) {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', source, ...process.argv.slice(2)], { stdio: 'inherit' })
  // The child is the gateway: what is sent to this process is meant for it (SIGTERM drains it).
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal))
  child.on('error', (err) => {
    process.stderr.write(`holdfast: cannot run the sources (${err.message}); run "npm run build" first\n`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    if (signal !== null) {
      // Die of the same signal, so the caller sees what the child saw.
      process.removeAllListeners(signal)
      process.kill(process.pid, signal)
    } else process.exit(code ?? 1)
  })
} else {
  process.stderr.write('holdfast: this package has neither dist/ nor src/: reinstall it\n')
  process.exit(1)
}
