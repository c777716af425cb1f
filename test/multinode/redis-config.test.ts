/**
 * `holdfast serve --engine redis` with a Redis configuration it cannot work with stops at once
 * with exit code 2 and a message naming the problem: an unreachable Sentinel set, a master name
 * the Sentinels do not know, a single server given as a cluster, a malformed URL. A Redis that
 * goes away *later* is different: the node stays up, answers /readyz 503 and logs why.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { cleanEnv, runCliToEnd } from '../../packages/cli/test/helpers.js'
import { SentinelSet } from '../support/redis-topology.js'
import { freePort } from '../support/ports.js'
import { REDIS_SERVER, requireBinary, startRedis, ServeNode, until } from './fleet.js'

async function serveExit(redisUrl: string): Promise<{ code: number | null; stderr: string }> {
  return runCliToEnd(['serve', '--engine', 'redis', '--redis-url', redisUrl, '--port', '0', '--session-secret', 'config-test-session-secret-0123', '--log-level', 'warn'], cleanEnv(), 30_000)
}

describe('serve --engine redis: configuration that cannot work', () => {
  it('exits 2 naming the problem: no Sentinel answering, an unknown master name, a server that is not a cluster node, a bad URL', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const set = await SentinelSet.start()
    t.after(() => set.close())
    const single = await startRedis(t)
    const nobody = `127.0.0.1:${await freePort()},127.0.0.1:${await freePort()}`
    const cases: Array<[string, RegExp]> = [
      [`redis+sentinel://${nobody}/${SentinelSet.MASTER}`, /invalid configuration: no Sentinel answered at 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+/],
      [`redis+sentinel://${set.sentinels.map((s) => s.address).join(',')}/wrong-name`, /invalid configuration: the Sentinels at .* know no master named "wrong-name"/],
      [`redis+cluster://${single.address}`, new RegExp(`invalid configuration: redis ${single.address} is not a Redis Cluster node`)],
      [`redis+cluster://`, /--redis-url: redis URL "redis\+cluster:\/\/" names no cluster node/],
      [`redis+sentinel://${set.sentinels[0]?.address}`, /--redis-url: .* must end with the master name/],
    ]
    const results = await Promise.all(cases.map(([url]) => serveExit(url)))
    for (const [i, [url, re]] of cases.entries()) {
      const r = results[i] as { code: number | null; stderr: string }
      assert.equal(r.code, 2, `${url}: exit code (stderr: ${r.stderr})`)
      assert.match(r.stderr, re, url)
    }
  })

  it('Redis gone later: the node stays up, /readyz 503, and its log says why; back: ready again', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const set = await SentinelSet.start()
    t.after(() => set.close())
    const node = await ServeNode.start(t, 'n1', { redisUrl: set.url })
    assert.equal(await node.readyz(), 200)
    await Promise.all(set.sentinels.map((s) => s.kill()))
    await set.primary.kill()
    await until('/readyz 503', async () => (await node.readyz()) === 503, 10_000)
    await until('the reason in the log', () => /"msg":"redis \(sentinel [^)]+\) (still )?not ready: [^"]+"/.test(node.stdout()), 15_000)
    assert.equal((await fetch(`${node.url}/healthz`)).status, 200, 'alive')
    await set.primary.restart()
    await Promise.all(set.sentinels.map((s) => s.restart()))
    await until('/readyz 200 again', async () => (await node.readyz()) === 200, 30_000)
  })
})
