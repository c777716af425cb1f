/**
 * deploy/grafana/holdfast.json against a live fleet: two `holdfast serve --engine redis` nodes on a
 * real Redis, scraped every second by a real Prometheus (the Debian `prometheus` server), under a
 * load that makes every panel have something to show — clients and publishers on both nodes, a
 * refused upgrade, a Redis freeze (engine errors, the breaker opening), a drain of one node (drain
 * progress, restart closes, recoveries on the other). Then every query of every panel, with the
 * dashboard's variables filled in as Grafana would, must return at least one finite value over
 * the test's time range. The metric names must be the ones docs/metrics.md documents.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import WebSocket from 'ws'
import { ROOT } from '../../packages/cli/test/helpers.js'
import { freePort } from '../support/ports.js'
import { Publisher, Subscriber } from '../operations/delivery.js'
import { REDIS_SERVER, requireBinary, startFleet, startRedis, until } from '../multinode/fleet.js'

const PROMETHEUS = process.env['HOLDFAST_PROMETHEUS'] ?? '/usr/bin/prometheus'
const DASHBOARD = join(ROOT, 'deploy/grafana/holdfast.json')
const METRICS_DOC = join(ROOT, 'docs/metrics.md')

interface Target {
  expr: string
  refId: string
}
interface Panel {
  type: string
  title: string
  targets?: Target[]
}
interface Dashboard {
  panels: Panel[]
  templating: { list: Array<{ name: string; allValue?: string; query?: unknown }> }
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row')

/** A query as Grafana sends it with "All" nodes selected; rate windows of 5 s over 1 s scrapes. */
function fill(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5s').replaceAll('$instance', '.*')
}

class Prometheus {
  constructor(
    readonly url: string,
    readonly dir: string,
  ) {}

  static async start(t: TestContext, targets: string[]): Promise<Prometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-prometheus-'))
    const port = await freePort()
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: holdfast\n    static_configs:\n      - targets: [${targets.map((x) => `'${x}'`).join(', ')}]\n`,
    )
    const child = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
    t.after(() => {
      child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    })
    const p = new Prometheus(`http://127.0.0.1:${port}`, dir)
    await until('prometheus ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`)
      return (await fetch(`${p.url}/-/ready`).catch(() => undefined))?.status === 200
    }, 30_000, 100)
    return p
  }

  /** Every sample of a range query over [start, end] (seconds), step 1 s. */
  async range(expr: string, start: number, end: number): Promise<Array<{ metric: Record<string, string>; values: Array<[number, string]> }>> {
    const q = new URLSearchParams({ query: expr, start: String(start), end: String(end), step: '1' })
    const r = await fetch(`${this.url}/api/v1/query_range?${q}`)
    const body = (await r.json()) as { status: string; error?: string; data?: { result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> } }
    assert.equal(body.status, 'success', `${expr}: ${body.error}`)
    return body.data?.result ?? []
  }

  async instant(expr: string): Promise<number[]> {
    const r = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr })}`)
    const body = (await r.json()) as { data?: { result: Array<{ value: [number, string] }> } }
    return (body.data?.result ?? []).map((s) => Number(s.value[1]))
  }
}

describe('deploy/grafana/holdfast.json', () => {
  test('has the panels the operations need, each with queries, and uses only documented metrics', () => {
    const titles = queryPanels.map((p) => p.title.toLowerCase())
    for (const want of ['connections', 'connects', 'refusals', 'messages in / out', 'publish-to-delivery', 'recoveries', 'slow-consumer', 'engine errors', 'breaker', 'drain']) {
      assert.ok(titles.some((t) => t.includes(want)), `a panel about ${want}`)
    }
    const documented = new Set([...readFileSync(METRICS_DOC, 'utf8').matchAll(/`(holdfast_[a-z0-9_]+)`/g)].map((m) => m[1]))
    for (const p of queryPanels) {
      assert.ok((p.targets ?? []).length > 0, `${p.title} has queries`)
      for (const t of p.targets ?? []) {
        for (const [name] of t.expr.matchAll(/holdfast_[a-z0-9_]+/g)) {
          const base = name.replace(/_(bucket|sum|count)$/, '')
          assert.ok(documented.has(base) || /^holdfast_(nodejs|process)_/.test(name), `${p.title}: ${name} is in docs/metrics.md`)
        }
        // Per-node and fleet-wide: every query follows the node selector.
        assert.match(t.expr, /instance=~"\$instance"/, `${p.title} ${t.refId} honours the node variable`)
      }
    }
    const vars = dashboard.templating.list.map((v) => v.name)
    assert.deepEqual(vars, ['datasource', 'instance'])
  })

  test('every panel query returns data from Prometheus scraping a live fleet of two nodes', { timeout: 170_000 }, async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server') || !requireBinary(t, PROMETHEUS, 'prometheus')) return
    const redis = await startRedis(t)
    const [n1, n2] = await startFleet(t, redis.url, 2, {
      args: ['--ping-interval', '1s', '--drain-ms', '4000'],
      // pongTimeoutMs ≤ the ping interval: a ping every second, for the round-trip panel.
      config: { allowedOrigins: ['https://app.example.com'], pongTimeoutMs: 1000, redis: { commandTimeoutMs: 1000 } },
    })
    assert.ok(n1 !== undefined && n2 !== undefined)
    const prom = await Prometheus.start(t, [`127.0.0.1:${n1.port}`, `127.0.0.1:${n2.port}`])
    const started = Date.now() / 1000

    // Subscribers on both nodes (n2's fail over to n1 when it drains), a publisher on each.
    const subs = [
      ...Array.from({ length: 5 }, (_, i) => new Subscriber([n2.wsUrl, n1.wsUrl], `g-${i % 2}`).connect()),
      ...Array.from({ length: 5 }, (_, i) => new Subscriber([n1.wsUrl], `g-${i % 2}`).connect()),
    ]
    const pubs = [new Publisher([n1.wsUrl], 'p1').connect(), new Publisher([n2.wsUrl, n1.wsUrl], 'p2').connect()]
    t.after(() => [...subs, ...pubs].forEach((c) => c.close()))
    await until('clients subscribed', () => subs.every((s) => s.subscribed) && pubs.every((p) => p.client.state === 'connected'), 30_000)
    let turn = 0
    const timer = setInterval(() => {
      for (const p of pubs) void p.publish(`g-${turn++ % 2}`)
    }, 50)
    t.after(() => clearInterval(timer))
    // A refused upgrade on each node (an origin that is not allowed).
    for (const n of [n1, n2]) {
      const ws = new WebSocket(n.wsUrl, { headers: { origin: 'https://evil.example.com' } })
      ws.on('error', () => {})
      const [status] = await new Promise<[number]>((resolve) => ws.once('unexpected-response', (_req, res) => resolve([res.statusCode ?? 0])))
      assert.equal(status, 403)
    }
    // A client that leaves (close code normal) on each node.
    for (const n of [n1, n2]) {
      const leaver = new Subscriber([n.wsUrl], 'g-0').connect()
      await until('the leaver subscribed', () => leaver.subscribed, 10_000)
      leaver.close()
    }
    await until('both nodes scraped with traffic', async () => (await prom.instant('rate(holdfast_messages_out_total[5s]) > 0')).length === 2, 30_000, 250)
    await until('disconnects scraped on both nodes', async () => (await prom.instant('holdfast_disconnects_total{code="normal"}')).length === 2, 10_000, 250)

    // Redis frozen past the command timeout: publishes fail, the breaker opens.
    const errorsBefore = (await prom.instant('sum(holdfast_engine_errors_total)'))[0] ?? 0
    redis.pause()
    await until('engine errors scraped', async () => ((await prom.instant('sum(holdfast_engine_errors_total)'))[0] ?? 0) > errorsBefore, 20_000, 250).finally(() => redis.resume())
    await until('engines ready again', async () => (await prom.instant('holdfast_engine_ready == 1')).length === 2, 30_000, 250)

    // Drain n2: its clients move to n1 and recover there.
    n2.signal('SIGTERM')
    await until('drain scraped', async () => (await prom.instant('holdfast_draining == 1')).length === 1, 10_000, 200)
    const movers = subs.slice(0, 5)
    assert.ok(movers.every((s) => s.connects[0]?.node === 'n2'), 'the first five started on n2')
    await until('n2 subscribers moved to n1 and recovered', () => movers.every((s) => s.node === 'n1' && s.subscribed && s.subscribes.some((e) => e.wasRecovering && e.recovered)), 30_000)
    await until('recoveries scraped', async () => (await prom.instant('holdfast_recoveries_total{outcome="recovered"} > 0')).length > 0, 20_000, 250)
    await until('the drain\'s restart closes scraped', async () => {
      const now = Math.ceil(Date.now() / 1000)
      const restart = await prom.range('holdfast_disconnects_total{code="restart"}', now - 30, now)
      return restart.some((r) => r.values.length >= 2)
    }, 20_000, 250)
    clearInterval(timer)
    const ended = Date.now() / 1000 + 1

    const empty: string[] = []
    for (const p of queryPanels) {
      for (const target of p.targets ?? []) {
        const series = await prom.range(fill(target.expr), Math.floor(started), Math.ceil(ended))
        const finite = series.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v))))
        if (!finite) empty.push(`${p.title} [${target.refId}] ${target.expr}`)
      }
    }
    if (empty.length > 0) console.log('# disconnects:', JSON.stringify(await prom.range('holdfast_disconnects_total', Math.floor(started), Math.ceil(ended))))
    assert.deepEqual(empty, [], 'every panel query returns data')
    // The node variable's query (label_values(holdfast_node_info, instance)) finds both nodes.
    const r = await fetch(`${prom.url}/api/v1/label/instance/values?${new URLSearchParams({ 'match[]': 'holdfast_node_info', start: String(Math.floor(started)) })}`)
    assert.deepEqual(((await r.json()) as { data: string[] }).data.sort(), [`127.0.0.1:${n1.port}`, `127.0.0.1:${n2.port}`].sort())
  })
})
