import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Writable } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { createHoldfast } from '@holdfast/server'
import { resolveBenchConfig, runBench, type BenchReport } from '../src/bench/index.js'
import { runBenchCommand } from '../src/bench-command.js'

/** Collects what the bench prints, so the test output stays readable. */
function sink(): Writable & { text(): string } {
  let out = ''
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString()
      cb()
    },
  }) as Writable & { text(): string }
  w.text = () => out
  return w
}

/**
 * A holdfast server that is wrong on purpose: to the first subscriber it never sends the
 * publication with seq 3 and sends the one with seq 5 twice. Everything else is the real wire
 * protocol (connect and subscribe results, publish acks, pub pushes), just enough of it.
 */
async function startFaultyServer(): Promise<{ url: string; close(): Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', path: '/ws' })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  const subscribers: WebSocket[] = []
  let offset = 0
  wss.on('connection', (ws) => {
    ws.on('message', (raw) => {
      for (const line of String(raw).split('\n')) {
        const msg = JSON.parse(line) as { id: number; type: string; channel?: string; data?: { seq: number } }
        const reply = (result: unknown): void => ws.send(JSON.stringify({ id: msg.id, result }))
        if (msg.type === 'connect') reply({ client: 'c', session: { id: 's', token: 't' }, resumed: false, version: 1, node: 'faulty', ping: 25_000 })
        else if (msg.type === 'subscribe') {
          subscribers.push(ws)
          reply({ epoch: 'e', offset, recovered: false, wasRecovering: false, publications: [] })
        } else if (msg.type === 'publish') {
          offset++
          reply({ offset, epoch: 'e' })
          const push = JSON.stringify({ type: 'pub', channel: msg.channel, epoch: 'e', offset, data: msg.data })
          subscribers.forEach((s, i) => {
            const seq = msg.data?.seq
            if (i === 0 && seq === 3) return
            s.send(push)
            if (i === 0 && seq === 5) s.send(push)
          })
        }
      }
    })
  })
  const { port } = wss.address() as AddressInfo
  return { url: `ws://127.0.0.1:${port}/ws`, close: () => new Promise((r) => wss.close(() => r())) }
}

describe('holdfast bench runs', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-bench-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('200 connections for 5 s against a real holdfast server: all connected, nothing lost or duplicated', async () => {
    const cfg = resolveBenchConfig(['--connections', '200', '--duration', '5', '--rate', '20', '--workers', '2', '--quiet'], {})
    const r: BenchReport = await runBench(cfg, { stderr: sink() })
    assert.equal(r.target.kind, 'holdfast')
    assert.equal(r.target.startedByBench, true)
    assert.equal(r.connect.attempted, 200)
    assert.equal(r.connect.connected, 200)
    assert.equal(r.connect.successRate, 1)
    assert.ok(r.delivery.published >= 90 && r.delivery.published <= 110, `published ${r.delivery.published}`)
    assert.equal(r.delivery.expected, 200 * r.delivery.published)
    assert.equal(r.delivery.delivered, 200 * r.delivery.published)
    assert.equal(r.delivery.lost, 0)
    assert.equal(r.delivery.inFlightAtEnd, 0)
    assert.equal(r.delivery.duplicated, 0)
    assert.equal(r.delivery.quiescent, true)
    assert.equal(r.delivery.latencyMs?.count, r.delivery.delivered)
    assert.ok(r.connect.handshakeMs !== null && r.connect.handshakeMs.count === 200)
    assert.ok(r.server !== null, 'the server the bench started is measured')
    assert.ok(r.server.cpuMicrosPerDelivery !== null && r.server.cpuMicrosPerDelivery > 0)
    assert.ok(r.server.rssAfterRampBytes > 0)
    assert.equal(r.scenario.workers, 2)
    assert.ok(r.timeline.length >= 5)
  })

  it('catches a server that drops one publication and repeats another; writes JSON and a self-contained HTML report', async () => {
    const server = await startFaultyServer()
    try {
      const json = join(dir, 'faulty.json')
      const html = join(dir, 'faulty.html')
      const stdout = sink()
      const r = (await runBenchCommand(
        ['--url', server.url, '--connections', '2', '--duration', '2', '--rate', '10', '--workers', '1', '--drain', '3', '--json', json, '--html', html, '--quiet'],
        {},
        { stdout, stderr: sink() },
      )) as BenchReport
      assert.ok(r.delivery.published > 6, 'seq 3 and 5 were published')
      assert.equal(r.delivery.lost, 1)
      assert.equal(r.delivery.duplicated, 1)
      assert.equal(r.delivery.delivered, 2 * r.delivery.published)
      assert.equal(r.connect.successRate, 1)
      assert.equal(r.server, null, 'an external server without --server-pid is not measured')
      assert.match(stdout.text(), /lost 1, duplicated 1/)

      assert.deepEqual(JSON.parse(readFileSync(json, 'utf8')).delivery.lost, 1)
      const page = readFileSync(html, 'utf8')
      assert.match(page, /^<!doctype html>/)
      assert.ok(page.includes('<svg'), 'charts are inline SVG')
      assert.doesNotMatch(page, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i, 'nothing is loaded from elsewhere')
      assert.doesNotMatch(page, /<link\b|<script\b[^>]*\bsrc=|<img\b|@import|url\(/i)
      const embedded = /<script type="application\/json" id="report">(.*)<\/script>/s.exec(page)
      assert.ok(embedded?.[1] !== undefined)
      assert.equal((JSON.parse(embedded[1]) as BenchReport).delivery.duplicated, 1)
    } finally {
      await server.close()
    }
  })

  it('loads an external server with minted tokens and measures it through --server-pid', async () => {
    const secret = 'bench-test-secret-0123456789abcdef0123456789'
    const http = createServer()
    const unlimited = { perSecond: 1_000_000, burst: 1_000_000 }
    const holdfast = createHoldfast({ logger: false, jwt: { secret }, maxConnectionsPerIp: 1_000_000, connectRatePerIp: unlimited })
    holdfast.attach(http)
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()))
    const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ws`
    try {
      // This test process is the server process: its pid is what --server-pid reads. Its parent
      // stands in for the other processes of a server made of several (serve --workers N).
      const pids = [process.pid, process.ppid]
      const cfg = resolveBenchConfig(['--url', url, '--token-secret', secret, '--server-pid', pids.join(','), '--connections', '50', '--duration', '2', '--rate', '10', '--workers', '1', '--quiet'], {})
      const r = await runBench(cfg, { stderr: sink() })
      assert.equal(r.connect.connected, 50)
      assert.equal(r.delivery.lost, 0)
      assert.equal(r.delivery.delivered, 50 * r.delivery.published)
      assert.equal(r.target.pid, process.pid)
      assert.equal(r.target.startedByBench, false)
      assert.ok(r.server !== null && r.server.gcBeforeReadings === false)
      // Summed over the processes, and each one reported on its own.
      const sv = r.server
      assert.deepEqual(sv.pids, pids)
      assert.deepEqual(sv.processes.map((p) => p.pid), pids)
      const sum = (f: (p: (typeof sv.processes)[number]) => number): number => sv.processes.reduce((n, p) => n + f(p), 0)
      assert.equal(sum((p) => p.rssAfterRampBytes), sv.rssAfterRampBytes)
      assert.equal(sum((p) => p.rssBaselineBytes), sv.rssBaselineBytes)
      assert.ok(Math.abs(sum((p) => p.cpuSeconds) - sv.cpuSeconds) < 0.01)
      assert.ok((sv.processes[0]?.cpuSeconds ?? 0) > 0, 'the server process worked during the run')

      const wrong = resolveBenchConfig(['--url', url, '--token-secret', `${secret}-not`, '--connections', '5', '--duration', '1', '--workers', '1', '--quiet'], {})
      await assert.rejects(runBench(wrong, { stderr: sink() }), /publisher was refused/)
    } finally {
      await holdfast.close({ drainMs: 0 })
      await new Promise<void>((r) => http.close(() => r()))
    }
  })

  it('shootout: adds clients in steps while broadcasting, with no loss across the subscriptions made mid-stream', async () => {
    const cfg = resolveBenchConfig(['--mode', 'shootout', '--connections', '150', '--step', '50', '--step-duration', '1', '--rate', '20', '--workers', '2', '--quiet'], {})
    const r = await runBench(cfg, { stderr: sink() })
    const so = r.shootout
    assert.ok(so !== null)
    assert.deepEqual(
      so.steps.map((s) => s.clients),
      so.steps.map((_, i) => 50 * (i + 1)),
    )
    if (so.reached === 150) assert.match(so.stoppedBecause, /reached --connections 150/)
    else assert.match(so.stoppedBecause, /exceeded 500 ms/) // a very loaded machine
    // Clients joined while publications flowed: the checker owes each only what followed its subscription.
    assert.equal(r.delivery.lost, 0)
    assert.equal(r.delivery.duplicated, 0)
    assert.ok(r.delivery.expected > 0 && r.delivery.delivered >= r.delivery.expected)
  })

  it('shootout stops at the first step whose broadcast p95 exceeds the limit', async () => {
    const cfg = resolveBenchConfig(['--mode', 'shootout', '--connections', '100', '--step', '20', '--step-duration', '1', '--rate', '20', '--p95-limit-ms', '0.001', '--workers', '1', '--quiet'], {})
    const r = await runBench(cfg, { stderr: sink() })
    assert.equal(r.shootout?.reached, 0)
    assert.equal(r.shootout?.steps.length, 1)
    assert.match(r.shootout?.stoppedBecause ?? '', /exceeded 0.001 ms at 20 clients/)
  })
})
