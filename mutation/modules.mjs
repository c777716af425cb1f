// The core modules under mutation testing, each with the test files that cover it. A mutant runs
// only against the files of its module that executed it (Stryker's per-test coverage, one "test" per
// file with the TAP runner), so a module lists the files that prove its behaviour, not every file
// that happens to load it.

/** @typedef {{ name: string, mutate: string[], tests: string[] }} MutationModule */

/** @type {MutationModule[]} */
export const MODULES = [
  {
    name: 'hub',
    mutate: ['packages/server/src/hub.ts'],
    tests: [
      'packages/server/test/hub-live-feed.test.ts',
      'packages/server/test/hub-resync.test.ts',
      'packages/server/test/hub-subscribe-race.test.ts',
      'packages/server/test/recovery.test.ts',
    ],
  },
  {
    name: 'memory-engine',
    mutate: ['packages/server/src/engine/memory-engine.ts'],
    tests: ['packages/server/test/memory-engine.test.ts', 'packages/server/test/memory-engine-footprint.test.ts'],
  },
  {
    name: 'codec',
    mutate: ['packages/protocol/src/codec.ts'],
    tests: ['packages/protocol/test/codec-limits.test.ts', 'packages/protocol/test/codec.test.ts'],
  },
  {
    name: 'outbox',
    mutate: ['packages/client/src/outbox.ts'],
    tests: ['packages/client/test/outbox.test.ts', 'packages/client/test/message-id.test.ts', 'packages/client/test/commands.test.ts'],
  },
  {
    name: 'backoff',
    mutate: ['packages/client/src/backoff.ts', 'packages/client/src/reconnect-policy.ts'],
    tests: ['packages/client/test/backoff.test.ts', 'packages/client/test/backoff-window.test.ts', 'packages/client/test/reconnect-policy.test.ts'],
  },
  {
    name: 'subscription',
    mutate: ['packages/client/src/subscription.ts'],
    tests: [
      'packages/client/test/subscription.test.ts',
      'packages/client/test/subscription-recovery.test.ts',
      'packages/client/test/fake-server.test.ts',
    ],
  },
]

/** Files whose change makes a module worth re-testing: the module's sources and its test files. */
export function filesOf(module) {
  return [...module.mutate, ...module.tests]
}
