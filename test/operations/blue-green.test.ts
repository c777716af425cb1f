/**
 * Blue-green and canary with nginx (issue 5): two sets of `holdfast serve --engine redis` nodes on
 * one Redis, nginx configured from deploy/blue-green (rendered by its render.sh) and switched with
 * `nginx -s reload`. Clients start on blue; a 50% canary sends new connections to both colors; the
 * switch sends every new connection to green while blue's open WebSockets stay put; draining blue
 * moves them to green. Every publication is delivered exactly once throughout.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'
import { connectClient, ROOT } from '../../packages/cli/test/helpers.js'
import { NGINX, REDIS_SERVER, requireBinary, ServeNode, startRedis, until, within } from '../multinode/fleet.js'
import { Nginx } from '../multinode/nginx.js'
import { blueGreenSite, type ColorPlan } from './blue-green-nginx.js'
import { OPEN_LIMITS } from './cluster.js'
import { assertDelivered, Publisher, publishRoundRobin, Subscriber } from './delivery.js'

const CLIENTS = 100
const CHANNELS = ['bg-0', 'bg-1', 'bg-2', 'bg-3']

/** Open `n` fresh connections through nginx and return the node ids that answered. */
async function probe(url: string, n: number): Promise<string[]> {
  const clients = await Promise.all(Array.from({ length: n }, () => connectClient(url)))
  for (const c of clients) c.ws.close()
  return clients.map((c) => (c.reply.result as { node?: string } | undefined)?.node ?? '?')
}

const color = (node: string | undefined): string => (node ?? '').replace(/\d+$/, '')

describe('blue-green behind nginx (Redis engine shared by both colors)', () => {
  test('canary, switch to green, drain blue: every client ends on green, nothing lost or duplicated', async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server') || !requireBinary(t, NGINX, 'nginx')) return
    const redis = await startRedis(t)
    const ids = ['blue1', 'blue2', 'green1', 'green2']
    const [blue1, blue2, green1, green2] = await Promise.all(
      ids.map((id) => ServeNode.start(t, id, { redisUrl: redis.url, config: OPEN_LIMITS, args: ['--drain-ms', '2000'] })),
    )
    assert.ok(blue1 !== undefined && blue2 !== undefined && green1 !== undefined && green2 !== undefined)
    const colors = { blue: [blue1, blue2].map((n) => `127.0.0.1:${n.port}`), green: [green1, green2].map((n) => `127.0.0.1:${n.port}`) }
    const plan = (live: ColorPlan['live'], canary = 0): ColorPlan => ({ ...colors, live, canary })
    const nginx = await Nginx.serve(t, blueGreenSite(plan('blue')))

    const subs = Array.from({ length: CLIENTS }, (_, i) => new Subscriber(nginx.wsUrl, CHANNELS[i % CHANNELS.length] as string).connect())
    const pubs = [new Publisher(nginx.wsUrl, 'p0').connect(), new Publisher(nginx.wsUrl, 'p1').connect()]
    t.after(() => [...subs, ...pubs].forEach((c) => c.close()))
    await until('every client subscribed', () => subs.every((s) => s.subscribed) && pubs.every((p) => p.client.state === 'connected'), 30_000)
    assert.deepEqual(new Set(subs.map((s) => color(s.node))), new Set(['blue']), 'everyone starts on blue')
    assert.equal(new Set(subs.map((s) => s.node)).size, 2, 'on both blue nodes')
    const stopPublishing = publishRoundRobin(pubs, CHANNELS, 20)
    await until('publications on blue', () => pubs.every((p) => p.acked.length >= 20), 10_000)
    const connectsBefore = subs.map((s) => s.connects.length)

    // Canary: half of the NEW connections to green. The reload takes effect when nginx's new
    // worker has started, so wait for the first green answer, then sample.
    await nginx.reload(blueGreenSite(plan('blue', 50)))
    await until('a canary connection on green', async () => (await probe(nginx.wsUrl, 4)).some((n) => color(n) === 'green'), 10_000)
    const sample = await probe(nginx.wsUrl, 40)
    const greens = sample.filter((n) => color(n) === 'green').length
    // 40 draws at 50%: all on one color has probability 2 × 2^-40.
    assert.ok(greens > 0 && greens < 40, `the canary splits new connections (${greens}/40 on green)`)

    // Switch: every new connection to green. Open WebSockets are not touched by the reload.
    await nginx.reload(blueGreenSite(plan('green')))
    await until('new connections all on green', async () => (await probe(nginx.wsUrl, 10)).every((n) => color(n) === 'green'), 10_000)
    // The recipe labels what answered, for operators checking a switch with curl.
    const health = await fetch(`${nginx.url}/healthz`)
    assert.equal(health.status, 200)
    assert.equal(health.headers.get('x-holdfast-color'), 'green')
    assert.ok(colors.green.includes(health.headers.get('x-holdfast-upstream') ?? ''), `upstream ${health.headers.get('x-holdfast-upstream')}`)
    assert.deepEqual(
      subs.map((s) => s.connects.length),
      connectsBefore,
      'no client was disconnected by the canary or the switch',
    )
    assert.ok(subs.every((s) => color(s.node) === 'blue' && s.client.state === 'connected'))
    // nginx keeps the old worker, which holds blue's WebSockets, until they close.
    assert.ok(nginx.workers().length >= 2, `an old nginx worker still proxies blue's connections (workers: ${nginx.workers().join(',')})`)

    // Drain blue: its clients are told `restart`, reconnect through nginx, land on green, recover.
    const drainAt = performance.now()
    await within(30_000, 'blue to drain and exit', Promise.all([blue1.kill('SIGTERM'), blue2.kill('SIGTERM')]))
    await until('every client on green', () => subs.every((s) => s.subscribed && color(s.node) === 'green') && pubs.every((p) => color(p.node) === 'green'), 20_000)
    for (const s of subs) {
      const resub = s.subscribes.find((e) => e.at > drainAt)
      assert.equal(resub?.recovered, true, `recovered on ${s.node}`)
    }
    // With blue's WebSockets gone, the old nginx worker has nothing left to serve and exits.
    await until('the old nginx worker to exit', () => nginx.workers().length === 1, 10_000)

    const acked = pubs.map((p) => p.acked.length)
    await until('publications on green', () => pubs.every((p, i) => p.acked.length >= (acked[i] as number) + 20), 10_000)
    await stopPublishing()
    const total = await assertDelivered(subs, pubs)
    const retries = subs.reduce((n, s) => n + s.attempts - s.connects.length, 0)
    assert.equal(retries, 0, 'no failed connection attempt during the move')
    process.stderr.write(
      `# blue-green: ${CLIENTS} clients moved to green; canary ${greens}/40 on green; ` +
        `${total.delivered} deliveries of ${total.expected} expected, ${total.lost} lost, ${total.duplicates} duplicated\n`,
    )
  })

  test('render.sh refuses a bad color, a canary of 100% and a missing color', async () => {
    const run = promisify(execFile)
    const script = join(ROOT, 'deploy/blue-green/render.sh')
    const ok = ['--blue', 'a:1', '--green', 'b:1']
    for (const args of [['--live', 'red', ...ok], ['--canary', '100', ...ok], ['--canary', '5;', ...ok], ['--blue', 'a:1'], ['--blue', 'a:1;', '--green', 'b:1']]) {
      await assert.rejects(run('bash', [script, ...args], { timeout: 10_000 }), (err: { code?: number }) => err.code === 2, JSON.stringify(args))
    }
    const { stdout } = await run('bash', [script, '--live', 'green', '--canary', '2.5', ...ok], { timeout: 10_000 })
    assert.match(stdout, /split_clients "\$\{request_id\}" \$holdfast_color \{\n {4}2\.5% blue;\n {4}\* green;\n\}/)
    assert.match(stdout, /upstream holdfast_blue \{[^}]*server a:1 max_fails=1 fail_timeout=10s;/)
    assert.doesNotMatch(stdout, /@@/)
  })
})
