/**
 * deploy/nginx: the template as rendered by render.sh is a valid nginx config, render.sh refuses
 * what would break or inject into it, and in front of a real fleet a draining node's 503 sends new
 * WebSockets to another node instead of to the client (`proxy_next_upstream http_503`).
 * The crash case (a refused connect) is in node-crash.test.ts.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { connectClient, ROOT } from '../../packages/cli/test/helpers.js'
import { NGINX, REDIS_SERVER, requireBinary, startFleet, startRedis, until } from './fleet.js'
import { Nginx, nginxArgs, renderSiteConfig } from './nginx.js'

const run = promisify(execFile)

describe('deploy/nginx', () => {
  it('the rendered template passes `nginx -t`', async (t) => {
    if (!requireBinary(t, NGINX, 'nginx')) return
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-nginx-t-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const site = await renderSiteConfig('127.0.0.1:18080', ['10.0.0.11:8080', '10.0.0.12:8080', '[::1]:8080'], ['--max-fails', '2', '--fail-timeout', '5s'])
    assert.match(site, /server 10\.0\.0\.12:8080 max_fails=2 fail_timeout=5s;/)
    assert.match(site, /server \[::1\]:8080 max_fails=2 fail_timeout=5s;/)
    assert.match(site, /listen 127\.0\.0\.1:18080;/)
    assert.doesNotMatch(site, /@@/, 'every placeholder is filled')
    writeFileSync(join(dir, 'holdfast.conf'), site)
    writeFileSync(
      join(dir, 'nginx.conf'),
      `pid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'error.log')};\nevents {}\nhttp { include ${join(dir, 'holdfast.conf')}; }\n`,
    )
    const r = await run(NGINX, ['-t', ...nginxArgs(dir)], { timeout: 10_000 })
    assert.match(r.stderr, /syntax is ok/)
    assert.match(r.stderr, /test is successful/)
  })

  it('render.sh refuses no nodes, unknown options and values that would inject nginx syntax', async () => {
    const script = join(ROOT, 'deploy/nginx/render.sh')
    for (const args of [[], ['--lisen', '80', 'a:1'], ['a:1; include /etc/passwd'], ['--listen', '80 }', 'a:1'], ['--fail-timeout', '5s;', 'a:1']]) {
      await assert.rejects(run('bash', [script, ...args], { timeout: 10_000 }), (err: { code?: number }) => err.code === 2, JSON.stringify(args))
    }
  })

  it('a draining node answers upgrades with 503: nginx sends new clients to another node', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server') || !requireBinary(t, NGINX, 'nginx')) return
    const redis = await startRedis(t)
    // A long drain, held open by a connected client, so that the node stays in it during the test.
    const nodes = await startFleet(t, redis.url, 2, { args: ['--drain-ms', '30000'] })
    const [a, b] = nodes
    assert.ok(a !== undefined && b !== undefined)
    const nginx = await Nginx.start(t, [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`])
    const holders = await Promise.all([connectClient(a.wsUrl), connectClient(a.wsUrl)])
    t.after(() => holders.forEach((h) => h.ws.terminate()))

    a.signal('SIGTERM')
    await until('node a to be draining', async () => (await a.readyz()) === 503, 5000)
    const fresh = await Promise.all(Array.from({ length: 8 }, () => connectClient(nginx.wsUrl)))
    const landed = fresh.map((c) => (c.reply.result as { node?: string } | undefined)?.node)
    for (const c of fresh) c.ws.close()
    assert.deepEqual(landed, Array(8).fill('n2'), 'every new client on the node that is not draining')
    // And nginx did try the draining node (which refused, and nginx moved on): not a lucky pick.
    const metrics = await (await fetch(`${a.url}/metrics`)).text()
    const refused = /^holdfast_connections_rejected_total\{reason="draining"\} (\d+)/m.exec(metrics)
    assert.ok(Number(refused?.[1] ?? 0) >= 1, `the draining node refused upgrades from nginx (${refused?.[0] ?? 'no counter'})`)
  })
})
