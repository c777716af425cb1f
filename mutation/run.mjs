#!/usr/bin/env node
// Mutation testing of the core modules (docs/reliability.md, "Mutation testing"): runs StrykerJS
// once per module of modules.mjs, each mutant against the test files of its module that cover it,
// and prints the score of each. Fails when a module scores below the bound.
//
//   npm run test:mutation                         every module
//   npm run test:mutation -- hub codec            these modules
//   npm run test:mutation -- --changed [REF]      the modules whose source or tests changed since
//                                                 REF (default: the merge base with main; on main
//                                                 itself, the parent of its last commit)
//   --ci                                          run only as many modules as fit CI_MINUTES
//                                                 together (`minutes` in modules.mjs); the others
//                                                 print the command of their weekly run
//   --break N                                     the lowest passing score, in percent (default 90)
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CI_MINUTES, filesOf, MODULES } from './modules.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const args = process.argv.slice(2)

/** `--name [value]`: undefined when absent, '' when given without a value (a module name is not one). */
function option(name) {
  const i = args.indexOf(name)
  if (i === -1) return undefined
  const value = args[i + 1]
  const hasValue = value !== undefined && !value.startsWith('--') && !MODULES.some((m) => m.name === value)
  args.splice(i, hasValue ? 2 : 1)
  return hasValue ? value : ''
}

function flag(name) {
  const i = args.indexOf(name)
  if (i !== -1) args.splice(i, 1)
  return i !== -1
}

const git = (...a) => execFileSync('git', a, { cwd: root, encoding: 'utf8' }).trim()

/** Where "changed" is counted from: the branch's merge base with main; on main, its last commit's parent. */
function changeBase(ref) {
  if (ref !== '') return ref
  const head = git('rev-parse', 'HEAD')
  let base = ''
  try {
    base = git('merge-base', 'HEAD', 'main')
  } catch {
    // No local main (a detached clone): fall through to the parent.
  }
  if (base !== '' && base !== head) return base
  try {
    return git('rev-parse', '--verify', '--quiet', 'HEAD^1')
  } catch {
    return undefined // a single-commit (or shallow) clone: nothing to compare with
  }
}

const breakAt = Number(option('--break') ?? 90)
const changed = option('--changed')
const ci = flag('--ci')
let selected = MODULES
if (args.length > 0) {
  const unknown = args.filter((a) => !MODULES.some((m) => m.name === a))
  if (unknown.length > 0) {
    console.error(`unknown module(s): ${unknown.join(', ')}; known: ${MODULES.map((m) => m.name).join(', ')}`)
    process.exit(2)
  }
  selected = MODULES.filter((m) => args.includes(m.name))
}
if (changed !== undefined) {
  const base = changeBase(changed)
  if (base === undefined) {
    console.log('mutation testing skipped: HEAD has no parent commit to compare with')
    process.exit(0)
  }
  const files = new Set(git('diff', '--name-only', base, '--').split('\n').filter(Boolean))
  selected = selected.filter((m) => filesOf(m).some((f) => files.has(f)))
  const what = `${git('rev-parse', '--short', base)}..${git('rev-parse', '--short', 'HEAD')}`
  if (selected.length === 0) {
    console.log(`mutation testing skipped: no core module (${MODULES.map((m) => m.name).join(', ')}) changed in ${what}`)
    process.exit(0)
  }
  console.log(`mutation testing the modules changed in ${what}: ${selected.map((m) => m.name).join(', ')}`)
}
if (ci) {
  // Changed modules in table order, as long as they fit the CI budget together.
  let minutes = 0
  const fit = []
  for (const m of selected) {
    if (minutes + m.minutes <= CI_MINUTES) {
      fit.push(m)
      minutes += m.minutes
    } else console.log(`mutation testing of ${m.name} (about ${m.minutes} min) is left to the weekly run: npm run test:mutation -- ${m.name}`)
  }
  selected = fit
  if (selected.length === 0) {
    console.log(`mutation testing skipped: no changed module fits the CI budget of ${CI_MINUTES} min`)
    process.exit(0)
  }
}

for (const m of selected) {
  const missing = filesOf(m).filter((f) => !existsSync(`${root}/${f}`))
  if (missing.length > 0) {
    console.error(`module ${m.name} names files that do not exist: ${missing.join(', ')}`)
    process.exit(2)
  }
}

/** Score as Stryker counts it: killed and timed-out mutants over all valid ones (survivors and uncovered included). */
function score(report) {
  const n = { killed: 0, timeout: 0, survived: 0, noCoverage: 0, invalid: 0, ignored: 0 }
  for (const file of Object.values(report.files)) {
    for (const mutant of file.mutants) {
      if (mutant.status === 'Killed') n.killed++
      else if (mutant.status === 'Timeout') n.timeout++
      else if (mutant.status === 'Survived') n.survived++
      else if (mutant.status === 'NoCoverage') n.noCoverage++
      else if (mutant.status === 'Ignored') n.ignored++
      else n.invalid++
    }
  }
  const valid = n.killed + n.timeout + n.survived + n.noCoverage
  return { ...n, valid, percent: valid === 0 ? 100 : (100 * (n.killed + n.timeout)) / valid }
}

function stryker(module) {
  const bin = `${root}/node_modules/@stryker-mutator/core/bin/stryker.js`
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, 'run', 'mutation/stryker.config.mjs'], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, HOLDFAST_MUTATION_MODULE: module.name },
    })
    child.on('exit', (code, signal) => resolve(signal === null ? (code ?? 1) : 1))
  })
}

const rows = []
let failed = false
for (const m of selected) {
  const started = Date.now()
  console.log(`\n== mutation testing ${m.name}: ${m.mutate.join(', ')} against ${m.tests.length} test files`)
  const code = await stryker(m)
  const seconds = Math.round((Date.now() - started) / 1000)
  const reportFile = `${root}/mutation/reports/${m.name}.json`
  if (code !== 0 || !existsSync(reportFile)) {
    rows.push(`${m.name.padEnd(14)} stryker failed (exit ${code})`)
    failed = true
    continue
  }
  const s = score(JSON.parse(readFileSync(reportFile, 'utf8')))
  const ok = s.percent >= breakAt
  if (!ok) failed = true
  rows.push(
    `${m.name.padEnd(14)} ${s.percent.toFixed(1).padStart(5)} %  ${String(s.killed + s.timeout).padStart(4)} killed (${s.timeout} by timeout), ` +
      `${s.survived} survived, ${s.noCoverage} not covered, ${s.invalid} invalid  ${seconds} s${ok ? '' : `  BELOW ${breakAt} %`}`,
  )
}
console.log(`\n== mutation scores (bound ${breakAt} %)`)
for (const r of rows) console.log(r)
process.exit(failed ? 1 : 0)
