#!/usr/bin/env node
// Runs the test suite with node's own test runner: TypeScript through tsx, workspace packages
// resolved to their sources (the "source" export condition), so no build is needed first.
// Usage: node scripts/run-tests.mjs [--pattern GLOB]... [--exclude GLOB]... [--filter=TEXT] [--list] [file.test.ts...]
// Node 20 has no glob support in `node --test`, so files are collected here.
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const args = process.argv.slice(2)
const dirs = ['packages/protocol/test', 'packages/server/test', 'packages/client/test', 'packages/react/test', 'packages/cli/test', 'test', 'conformance']

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

/**
 * A glob as a RegExp over repository-relative paths: `**` any number of folders, `*` any name
 * part, `?` one character. Enough for `packages/*\/test/**\/*.test.ts`; Node 20 has no glob.
 */
function globToRegExp(glob) {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` matches zero or more folders.
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*'
      i += glob[i + 2] === '/' ? 2 : 1
    } else if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

const patterns = []
const excludes = []
/** Positions of option values (globs), which are not test files even when they end in .test.ts. */
const optionValues = new Set()
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--exclude') {
    if (args[i + 1] === undefined) {
      console.error('run-tests: --exclude needs a glob, e.g. --exclude "**/browser*.test.ts"')
      process.exit(2)
    }
    optionValues.add(i + 1)
    excludes.push(globToRegExp(args[++i]))
  } else if (a === '--pattern') {
    if (args[i + 1] === undefined) {
      console.error('run-tests: --pattern needs a glob, e.g. --pattern "packages/*/test/**/*.test.ts"')
      process.exit(2)
    }
    patterns.push(globToRegExp(args[++i]))
  } else if (a.startsWith('--pattern=')) patterns.push(globToRegExp(a.slice('--pattern='.length)))
}

let files = args.filter((a, i) => a.endsWith('.test.ts') && !a.includes('*') && !optionValues.has(i))
const filter = args.find((a) => a.startsWith('--filter='))?.slice('--filter='.length)
if (files.length === 0) {
  files = dirs.flatMap((d) => walk(join(root, d), [])).map((f) => relative(root, f))
  if (filter) files = files.filter((f) => f.includes(filter))
  if (patterns.length > 0) files = files.filter((f) => patterns.some((re) => re.test(f)))
  if (excludes.length > 0) files = files.filter((f) => !excludes.some((re) => re.test(f)))
  if (files.length === 0) {
    console.error('run-tests: no test file matches')
    process.exit(1)
  }
}
files.sort()
if (args.includes('--list')) {
  process.stdout.write(`${files.join('\n')}\n`)
  process.exit(0)
}
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
