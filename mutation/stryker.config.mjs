// StrykerJS configuration for one core module, chosen by HOLDFAST_MUTATION_MODULE (see modules.mjs).
// `npm run test:mutation` (mutation/run.mjs) runs it once per module; by hand:
//   HOLDFAST_MUTATION_MODULE=hub npx stryker run mutation/stryker.config.mjs
import { MODULES } from './modules.mjs'

const name = process.env.HOLDFAST_MUTATION_MODULE
const module = MODULES.find((m) => m.name === name)
if (module === undefined) {
  throw new Error(`HOLDFAST_MUTATION_MODULE must name a module of mutation/modules.mjs (${MODULES.map((m) => m.name).join(', ')}), got ${String(name)}`)
}

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  // The TAP runner runs each test file in its own `node` process: node's test runner prints TAP,
  // tsx loads the TypeScript sources, and `source` resolves workspace packages to their src/.
  testRunner: 'tap',
  plugins: ['@stryker-mutator/tap-runner'],
  tap: {
    testFiles: module.tests,
    nodeArgs: ['--conditions=source', '--import', 'tsx', '--test-reporter=tap'],
    forceBail: true,
  },
  // Per test file: a mutant runs only the files of its module that executed its code.
  coverageAnalysis: 'perTest',
  mutate: module.mutate,
  // Only what the tests and their imports read is copied into the sandbox; of the command-line
  // package, the chaos proxy that the Redis topology tests put between nodes and Redis.
  ignorePatterns: [
    'mutation/reports',
    'mutation/.stryker-tmp*',
    'bench',
    'deploy',
    'docs',
    'examples',
    'test-artifacts',
    'packages/cli/*',
    '!packages/cli/src',
    'packages/cli/src/*',
    '!packages/cli/src/chaos',
    'packages/*/dist',
  ],
  concurrency: Number(process.env.HOLDFAST_MUTATION_CONCURRENCY ?? 2),
  // Tests wait for events with bounds of their own; a mutant that hangs one is a timeout (killed).
  timeoutMS: 15_000,
  timeoutFactor: 2,
  reporters: ['clear-text', 'json', process.env.CI === 'true' ? 'dots' : 'progress'],
  jsonReporter: { fileName: `mutation/reports/${module.name}.json` },
  clearTextReporter: { allowColor: process.env.CI !== 'true', logTests: false },
  // One sandbox folder per module, so that two modules can be run at once.
  tempDirName: `mutation/.stryker-tmp-${module.name}`,
  cleanTempDir: 'always',
  thresholds: { high: 95, low: 90, break: null },
}
