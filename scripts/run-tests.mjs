#!/usr/bin/env node
// Runs the test suite with node's own test runner: TypeScript through tsx, workspace packages
// resolved to their sources (the "source" export condition), so no build is needed first.
// Usage: node scripts/run-tests.mjs [--pattern GLOB]... [--only-files f1 f2]
// Node 20 has no glob support in `node --test`, so files are collected here.
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const args = process.argv.slice(2)
const dirs = ['packages/protocol/test', 'packages/server/test', 'packages/client/test', 'packages/react/test', 'packages/cli/test', 'test']

function walk(dir, out) {
  let entries
  try {
    entries = readdirSync(dir)
  } catch {
    return out
  }
  for (const name of entries) {
    const full = join(dir, name)
    if (statSync(full).isDirectory()) walk(full, out)
    else if (name.endsWith('.test.ts')) out.push(full)
  }
  return out
}

let files = args.filter((a) => a.endsWith('.test.ts'))
const filter = args.find((a) => a.startsWith('--filter='))?.slice('--filter='.length)
if (files.length === 0) {
  files = dirs.flatMap((d) => walk(join(root, d), [])).map((f) => relative(root, f))
  if (filter) files = files.filter((f) => f.includes(filter))
}
files.sort()
const concurrency = process.env.HOLDFAST_TEST_CONCURRENCY ?? '2'
const nodeArgs = [
  '--conditions=source',
  '--import',
  'tsx',
  '--test',
  `--test-concurrency=${concurrency}`,
  '--test-timeout=180000',
  ...(process.env.HOLDFAST_TEST_REPORTER ? [`--test-reporter=${process.env.HOLDFAST_TEST_REPORTER}`] : []),
  ...files,
]
const child = spawn(process.execPath, nodeArgs, { cwd: root, stdio: 'inherit' })
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 1)))
