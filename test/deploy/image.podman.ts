/**
 * The root Dockerfile, built and run for real with podman (CI: `.ci/run` runs this file; it is not
 * part of `npm test`, which would build the image twice). Each test runs the image as Kubernetes or
 * `docker run` would: read-only root filesystem, the image's own user, entry point and stop signal,
 * a port published to the host.
 *
 *   node --conditions=source --import tsx --test test/deploy/image.podman.ts
 *
 * HOLDFAST_IMAGE=<name> skips the build and tests that image.
 */
import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { mintToken } from '@holdfast/server/internal'
import { CloseCodes } from '@holdfast/protocol'
import { connectClient, until, within } from '../../packages/cli/test/helpers.js'
import { freePort } from '../support/ports.js'
import { assertDelivered, Publisher, publishRoundRobin, Subscriber } from '../operations/delivery.js'
import { assertOutcome, describeOutcome } from '../operations/load.js'
import { suiteCleanup } from '../operations/cluster.js'
import { buildImage, Container, havePodman } from './podman.js'
import { runRollout } from './rollout.js'

const TOKEN_SECRET = 'image-test-token-secret-0123456789abcdef'
const DRAIN_MS = 3000
const GRACE_S = 20

if (!havePodman()) {
  if (process.env['CI'] === 'true') throw new Error('podman is required in CI (apt-get install podman buildah runc)')
  console.log('# podman not found: the image tests are skipped')
  process.exit(0)
}

async function probe(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) })
    return { status: r.status, body: await r.text() }
  } catch {
    return undefined
  }
}

/** Start the image with a port published on the host; removed after the test. */
async function start(t: { after(fn: () => unknown): void }, image: string, opts: { args?: string[]; env?: Record<string, string> } = {}): Promise<{ c: Container; url: string; wsUrl: string }> {
  const port = await freePort()
  const c = await Container.run(image, { publish: [[port, 8080]], env: { HOLDFAST_TOKEN_SECRET: TOKEN_SECRET, ...opts.env }, args: opts.args ?? [] })
  t.after(() => c.remove())
  const url = `http://127.0.0.1:${port}`
  await until('/readyz 200 from the host', async () => (await probe(`${url}/readyz`))?.status === 200, 60_000, 200).catch(async (err: Error) => {
    throw new Error(`${err.message}; container logs: ${(await c.logs()).slice(-2000)}`)
  })
  return { c, url, wsUrl: `ws://127.0.0.1:${port}/ws` }
}

describe('the container image (podman, read-only root)', { timeout: 900_000 }, () => {
  let image = ''
  before(async () => {
    image = await buildImage((line) => console.log(`# ${line}`))
  }, { timeout: 900_000 })

  test('serves /healthz, /readyz and /ws through a published port, as an unprivileged user, with a working HEALTHCHECK', async (t) => {
    const { c, url, wsUrl } = await start(t, image)
    assert.deepEqual(await probe(`${url}/healthz`), { status: 200, body: '{"status":"ok"}' })
    assert.equal((await probe(`${url}/readyz`))?.status, 200)
    assert.equal(await c.healthcheck(), true, 'the image HEALTHCHECK (GET /healthz) passes')
    // The entry point binds every interface and runs production mode as uid 1000, not root.
    const id = await c.exec(['node', '-p', 'process.getuid() + " " + process.env.NODE_ENV'])
    assert.equal(id.stdout.trim(), '1000 production')
    // The root filesystem is read-only and the app's files are not the process's to change.
    const write = await c.exec(['node', '-e', 'require("fs").writeFileSync("/app/x", "")'])
    assert.notEqual(write.code, 0)
    assert.match(write.stderr, /EROFS|EACCES/)
    // A real client with a token minted from the same secret.
    const token = await mintToken({ secret: TOKEN_SECRET, sub: 'alice' })
    const client = await connectClient(wsUrl, token)
    assert.ok(client.reply.result !== undefined, `connected: ${JSON.stringify(client.reply)}`)
    client.ws.close()
  })

  test('refuses to start in production without authentication, with a message saying what to set', async () => {
    const c = await Container.run(image, { env: {} })
    try {
      const code = await c.wait(60_000)
      assert.notEqual(code, 0)
      assert.match(await c.logs(), /refusing to start: NODE_ENV=production and no authentication is configured/)
    } finally {
      await c.remove()
    }
  })

  test('podman stop: SIGTERM drains (clients told restart, /readyz 503) and the container exits 0 within the grace period', async (t) => {
    const { c, url, wsUrl } = await start(t, image, { args: ['--drain-ms', String(DRAIN_MS)] })
    const token = await mintToken({ secret: TOKEN_SECRET, sub: 'bob' })
    const clients = await Promise.all(Array.from({ length: 20 }, () => connectClient(wsUrl, token)))
    let readyDuringDrain: number | undefined
    const stopping = c.stop(GRACE_S)
    // While it drains, the readiness probe says so (the orchestrator stops routing to it).
    await until('/readyz 503 during the drain', async () => {
      const r = await probe(`${url}/readyz`)
      readyDuringDrain = r?.status
      return r?.status === 503
    }, 5000, 50)
    const closes = await within(DRAIN_MS + 5000, 'every client closed by the drain', Promise.all(clients.map((cl) => cl.closed)))
    const { ms, exitCode } = await stopping
    assert.equal(readyDuringDrain, 503)
    assert.deepEqual(new Set(closes.map((cl) => cl.code)), new Set([CloseCodes.restart.code]), 'every client told to reconnect elsewhere')
    assert.equal(exitCode, 0, 'a drain is a clean exit')
    assert.ok(ms < GRACE_S * 1000, `stopped in ${ms.toFixed(0)} ms, within the ${GRACE_S} s grace period (no SIGKILL)`)
    assert.ok(ms >= DRAIN_MS * 0.5, `the drain was spread over its window (${ms.toFixed(0)} ms)`)
    console.log(`# podman stop: ${clients.length} clients drained, exit ${exitCode} after ${ms.toFixed(0)} ms (drain window ${DRAIN_MS} ms, grace ${GRACE_S} s)`)
  })

  test('SIGHUP with --workers 2 replaces both workers inside the container; connected clients move and nothing is lost', async (t) => {
    const { c, wsUrl } = await start(t, image, { args: ['--workers', '2', '--drain-ms', '2000'] })
    const token = await mintToken({ secret: TOKEN_SECRET, sub: 'load' })
    const channels = ['img-0', 'img-1', 'img-2', 'img-3']
    const subs = Array.from({ length: 60 }, (_, i) => new Subscriber(wsUrl, channels[i % channels.length] as string, { token }).connect())
    const pubs = [new Publisher(wsUrl, 'p0', { token }).connect(), new Publisher(wsUrl, 'p1', { token }).connect()]
    t.after(() => [...subs, ...pubs].forEach((s) => s.close()))
    await until('every client subscribed', () => subs.every((s) => s.subscribed) && pubs.every((p) => p.client.state === 'connected'), 30_000)
    const nodesBefore = new Set(subs.map((s) => s.node))
    const stopPublishing = publishRoundRobin(pubs, channels, 40)
    await until('publications flowing', () => pubs.every((p) => p.acked.length >= 10), 20_000)

    const workersBefore = (await c.logLines(/^worker ready$/)).map((l) => l['pid'])
    await c.signal('SIGHUP')
    await c.waitForLog(/"msg":"rolling reload (finished|aborted)/, 90_000)
    assert.equal((await c.logLines(/^rolling reload aborted/)).length, 0)
    const workersAfter = (await c.logLines(/^worker ready$/)).map((l) => l['pid']).filter((p) => !workersBefore.includes(p))
    assert.equal(workersAfter.length, 2, 'two new workers')
    await until('every client back and subscribed on a new worker', () => subs.every((s) => s.subscribed && !nodesBefore.has(s.node)), 30_000)
    const ackedAtReload = pubs.reduce((n, p) => n + p.acked.length, 0)
    await until('publications after the reload', () => pubs.reduce((n, p) => n + p.acked.length, 0) >= ackedAtReload + 20, 20_000)
    await stopPublishing()
    const report = await assertDelivered(subs, pubs)
    assert.equal(report.lost + report.duplicates, 0)
    const unrecovered = subs.flatMap((s) => s.subscribes.filter((e) => e.wasRecovering && !e.recovered))
    assert.deepEqual(unrecovered, [], 'every resubscribe recovered')
    console.log(`# SIGHUP reload in the container: ${subs.length} subscribers moved to ${new Set(subs.map((s) => s.node)).size} new workers; ${report.delivered}/${report.expected} delivered, 0 lost, 0 duplicated`)
  })

  test('a Kubernetes-style rolling update of three containers behind nginx: nothing lost or duplicated, every client back, every old container exits 0', async (t) => {
    const cleanup = suiteCleanup()
    t.after(() => cleanup.run())
    const clients = 300
    const r = await runRollout(cleanup, { image, clients, channels: 10, preStopMs: 2000, drainMs: 3000, graceSeconds: 20, log: (line) => console.log(`# ${line}`) })
    const summary = describeOutcome(`rollout of ${r.replicas} containers`, r)
    console.log(`# ${summary.replaceAll('\n', '\n# ')}`)
    assertOutcome(r, clients, summary)
    assert.equal(r.retries, 0, 'no connection attempt failed: nginx never sent a client to a draining or stopped container')
    for (const step of r.steps) {
      assert.equal(step.exitCode, 0)
      assert.ok(step.stopMs < 20_000, `exited within the grace period (${step.stopMs.toFixed(0)} ms)`)
    }
  })
})
