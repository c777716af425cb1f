// Runs the WebSocket-level tests again on the uWebSockets.js transport (HOLDFAST_TEST_TRANSPORT=uws).
// uWS is a native addon built per Node ABI; where it has no binary (Node 24 with the npm mirror) this
// says so and exits 0: the ws run of `npm test` still covers everything there.
// Left out, each for a reason: fastify-plugin, api*, the CLI's http-app/admin tests (they are about
// node:http or Fastify attachment, which uWS cannot do), redis-engine (engine-level, not socket-level),
// and unit tests that never open a socket.
import { spawn } from 'node:child_process'
import { loadUws } from '@holdfast/server/internal'

const FILES = [
  'packages/server/test/gateway-basic.test.ts',
  'packages/server/test/limits.test.ts',
  'packages/server/test/bad-input.test.ts',
  'packages/server/test/sessions-heartbeat.test.ts',
  'packages/server/test/drain.test.ts',
  'packages/server/test/recovery.test.ts',
  'packages/server/test/server-subscribe.test.ts',
  'packages/server/test/send-queue.test.ts',
  'packages/server/test/deliverable-data.test.ts',
  'packages/server/test/close-ordering.test.ts',
  'packages/server/test/malformed-commands.test.ts',
  'packages/server/test/split-frames.test.ts',
  'packages/server/test/unsubscribe.test.ts',
  'packages/server/test/command-rate.test.ts',
  'packages/server/test/compression.test.ts',
  'packages/server/test/auth-gateway.test.ts',
  'packages/server/test/auth-origin.test.ts',
  'packages/server/test/hooks.test.ts',
  'packages/server/test/rpc-dedupe.test.ts',
  'packages/server/test/channels-access.test.ts',
  'packages/server/test/leak.test.ts',
  'packages/server/test/logging.test.ts',
  'packages/server/test/metrics.test.ts',
  'packages/server/test/ws-framing.test.ts',
  'packages/client/test/integration.test.ts',
]

const loaded = loadUws()
if ('error' in loaded) {
  console.log(`test:uws skipped on Node ${process.version}: uWebSockets.js cannot load here (${loaded.error})`)
  process.exit(0)
}
console.log(`test:uws: ${FILES.length} files on ${loaded.name}, Node ${process.version}`)
const child = spawn(process.execPath, ['scripts/run-tests.mjs', ...FILES], { stdio: 'inherit', env: { ...process.env, HOLDFAST_TEST_TRANSPORT: 'uws' } })
child.on("exit", (code) => process.exit(code ?? 1))
