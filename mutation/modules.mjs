// The core modules under mutation testing, each with the test files that cover it. A mutant runs
// only against the files of its module that executed it (Stryker's per-test coverage, one "test" per
// file with the TAP runner), so a module lists the files that prove its behaviour, not every file
// that happens to load it.

/**
 * `minutes`: how long the module's run takes on a 2-core machine (measured, rounded up); `--ci`
 * runs only as many changed modules as fit CI_MINUTES together, the others are left to the weekly run.
 * `mutate`: source files, or lines of one (`path:from-to`, as Stryker reads them).
 * @typedef {{ name: string, mutate: string[], tests: string[], minutes: number }} MutationModule
 */

export const CI_MINUTES = 6

/** @type {MutationModule[]} */
export const MODULES = [
  {
    name: 'hub',
    minutes: 15,
    mutate: ['packages/server/src/hub.ts'],
    tests: [
      'packages/server/test/hub-live-feed.test.ts',
      'packages/server/test/hub-resync.test.ts',
      'packages/server/test/hub-subscribe-race.test.ts',
      'packages/server/test/hub-subscribers.test.ts',
      'packages/server/test/recovery.test.ts',
      'packages/server/test/reply-budget.test.ts',
    ],
  },
  {
    name: 'memory-engine',
    minutes: 10,
    mutate: ['packages/server/src/engine/memory-engine.ts'],
    tests: ['packages/server/test/memory-engine.test.ts', 'packages/server/test/memory-engine-footprint.test.ts', 'packages/server/test/engine-budgets.test.ts'],
  },
  {
    name: 'codec',
    minutes: 24,
    mutate: [
      'packages/protocol/src/codec.ts',
      'packages/protocol/src/json-codec.ts',
      'packages/protocol/src/msgpack-codec.ts',
      'packages/protocol/src/json-bytes.ts',
      'packages/protocol/src/pong-frame.ts',
    ],
    tests: [
      'packages/protocol/test/codec-limits.test.ts',
      'packages/protocol/test/codec.test.ts',
      'packages/protocol/test/json-bytes.test.ts',
      'packages/protocol/test/malformed-commands.test.ts',
      'packages/protocol/test/pong-frame.test.ts',
      'packages/protocol/test/batches.test.ts',
    ],
  },
  {
    name: 'outbox',
    minutes: 2,
    mutate: ['packages/client/src/outbox.ts'],
    tests: ['packages/client/test/outbox.test.ts', 'packages/client/test/message-id.test.ts', 'packages/client/test/commands.test.ts'],
  },
  {
    name: 'backoff',
    minutes: 4,
    mutate: ['packages/client/src/backoff.ts', 'packages/client/src/reconnect-policy.ts'],
    tests: ['packages/client/test/backoff.test.ts', 'packages/client/test/backoff-window.test.ts', 'packages/client/test/reconnect-policy.test.ts'],
  },
  {
    name: 'subscription',
    minutes: 4,
    mutate: ['packages/client/src/subscription.ts'],
    tests: [
      'packages/client/test/subscription.test.ts',
      'packages/client/test/subscription-recovery.test.ts',
      'packages/client/test/fake-server.test.ts',
      'packages/client/test/typed-channels.test.ts',
      'packages/client/test/persistent-outbox.test.ts',
    ],
  },
  {
    name: 'ipc-engine',
    minutes: 10,
    mutate: ['packages/server/src/engine/ipc-engine.ts'],
    tests: ['packages/server/test/ipc-engine.test.ts'],
  },
  {
    // The Redis engine's internals: the per-channel publish queue, history reads and their repair,
    // epoch moves, the server identity check and the live feed; with the publish order gate.
    name: 'redis-engine',
    minutes: 51,
    mutate: ['packages/server/src/engine/redis-engine.ts:424-789', 'packages/server/src/engine/redis-publish-order.ts'],
    tests: [
      'packages/server/test/redis-engine.test.ts',
      'packages/server/test/redis-publish-order.test.ts',
      'packages/server/test/redis-epochs.test.ts',
    ],
  },
  {
    // The Redis engine's calls: start and close, argument checks, presence, idempotency, occupancy,
    // the node registry (each a script run against real Redis). Not measured on its own yet: 337
    // mutants, estimated from the other half (468 mutants, 51 minutes).
    name: 'redis-engine-calls',
    minutes: 45,
    mutate: ['packages/server/src/engine/redis-engine.ts:1-423'],
    tests: ['packages/server/test/redis-engine.test.ts', 'packages/server/test/redis-epochs.test.ts'],
  },
]

/** Files whose change makes a module worth re-testing: the module's sources and its test files. */
export function filesOf(module) {
  // A `mutate` entry may name lines of its file (`path:from-to`).
  return [...module.mutate.map((f) => f.replace(/:[\d:-]+$/, '')), ...module.tests]
}
