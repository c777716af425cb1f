import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { CloseCodes, HoldfastError } from '@holdfast/protocol'
import pino from 'pino'
import type { HoldfastOptions } from '../src/options.js'
import { RawClient, expectClosedWith, tryUpgrade, waitFor, serverPerTest } from './helpers.js'

const TOKEN = 'tok-SECRET-5f2a9c0d'
const PAYLOAD = 'PAYLOAD-SENTINEL-7c1e'
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`
const LEVEL = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 } as const

interface Line {
  level: number
  msg?: string
  client?: string
  trace?: string
  [key: string]: unknown
}

/** A pino logger writing JSON lines to memory, at the most verbose level. */
function memoryLogger(): { logger: pino.Logger; raw: () => string; lines: () => Line[] } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'))
      cb()
    },
  })
  const logger = pino({ level: 'trace' }, stream)
  const raw = (): string => chunks.join('')
  return {
    logger,
    raw,
    lines: () =>
      raw()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Line),
  }
}

describe('logging', () => {
  const fx = serverPerTest()
  const start = fx.start
  const client = (url: string, headers?: Record<string, string>): RawClient => fx.client(url, headers === undefined ? {} : { headers })

  /** Only this token opens a connection: any other is refused, and the failure logged. */
  const authenticate: HoldfastOptions['authenticate'] = ({ token }) => {
    if (token === TOKEN) return { user: 'alice' }
    throw new HoldfastError('unauthorized', 'unknown token')
  }

  it('lines about a connection carry client and trace (the traceparent one), at sensible levels; no token or payload ever', async () => {
    const mem = memoryLogger()
    const s = await start({
      logger: mem.logger,
      authenticate,
      allowedOrigins: ['https://app.example'],
      onPublish: () => {
        throw new Error('the app hook broke')
      },
    })
    s.gw.onRpc('explode', () => {
      throw new Error('handler bug')
    })

    // A traced connection: token in the connect command, a publish and an RPC carrying the payload.
    const traced = client(s.url, { traceparent: TRACEPARENT })
    const { client: tracedId } = await traced.connect({ token: TOKEN })
    await traced.call({ type: 'subscribe', channel: 'logs' })
    await traced.call({ type: 'publish', channel: 'logs', data: { text: PAYLOAD }, msgId: 'm1' })
    await s.gw.publish('logs', { text: PAYLOAD })
    const failed = await traced.request({ type: 'rpc', method: 'explode', data: PAYLOAD, msgId: 'r1' })
    assert.ok('error' in failed)
    await traced.until(() => traced.pubs('logs').length === 2)

    // An untraced connection with the token in the Authorization header.
    const untraced = client(s.url, { authorization: `Bearer ${TOKEN}` })
    const { client: untracedId } = await untraced.connect()

    // Failures: a wrong token in the connect command, a wrong one in the upgrade, a bad origin,
    // and a malformed frame that holds the token and the payload.
    const wrong = client(s.url)
    await wrong.opened()
    wrong.sendRaw({ id: 1, type: 'connect', version: 1, token: `${TOKEN}-but-wrong` })
    await expectClosedWith(wrong, CloseCodes.unauthorized.code)
    const refused = await tryUpgrade(s.url, { headers: { authorization: `Bearer ${TOKEN}-nope`, traceparent: TRACEPARENT } })
    assert.ok('status' in refused && refused.status === 401)
    const origin = await tryUpgrade(s.url, { headers: { origin: 'https://evil.example' } })
    assert.ok('status' in origin && origin.status === 403)
    const garbled = client(s.url)
    await garbled.opened()
    garbled.ws.send(`{"type":"connect","id":1,"version":1,"token":"${TOKEN}","data":"${PAYLOAD}"`)
    await expectClosedWith(garbled, CloseCodes.bad_request.code)

    traced.close()
    untraced.close()
    await waitFor(() => s.gw.connectionCount === 0, 5000, 'connections to close')
    await waitFor(() => mem.lines().filter((l) => l.msg === 'disconnected').length === 4, 5000, '4 disconnected lines')

    const raw = mem.raw()
    assert.ok(!raw.includes(TOKEN), 'a token was logged')
    assert.ok(!raw.includes(PAYLOAD), 'a payload was logged')

    const lines = mem.lines()
    const about = (msg: string): Line[] => lines.filter((l) => l.msg === msg)
    const HEX32 = /^[0-9a-f]{32}$/

    // Every line that names a connection also carries its trace id, and the reverse.
    const withClient = lines.filter((l) => l.client !== undefined)
    assert.ok(withClient.length >= 10, `${withClient.length} lines about connections`)
    for (const l of withClient) assert.match(String(l.trace), HEX32, `no trace on ${JSON.stringify(l)}`)
    // Every line carries the node id (the gateway's child logger binds it).
    for (const l of lines) assert.equal(l['node'], s.gw.nodeId)

    // The traceparent's trace id is the trace of every line of that connection.
    const tracedLines = lines.filter((l) => l.client === tracedId)
    assert.ok(tracedLines.length >= 3)
    for (const l of tracedLines) assert.equal(l.trace, TRACE_ID)
    const untracedLines = lines.filter((l) => l.client === untracedId)
    assert.ok(untracedLines.length >= 2)
    for (const l of untracedLines) assert.notEqual(l.trace, TRACE_ID)
    assert.equal(new Set(untracedLines.map((l) => l.trace)).size, 1, 'one trace per connection')

    // Levels: lifecycle at debug, refusals and auth failures at info, errors at error.
    const connected = about('connected')
    assert.equal(connected.length, 2)
    for (const l of connected) assert.equal(l.level, LEVEL.debug)
    for (const l of about('disconnected')) {
      assert.equal(l.level, LEVEL.debug)
      assert.equal(typeof l['code'], 'number')
      assert.equal(typeof l['codeName'], 'string')
    }
    const authFailed = about('authentication failed')
    assert.equal(authFailed.length, 1)
    assert.equal(authFailed[0]?.level, LEVEL.info)
    assert.match(String(authFailed[0]?.client), /./)
    const refusals = about('connection refused')
    assert.deepEqual(refusals.map((l) => [l.level, l['status'], l['reason']]).sort(), [
      [LEVEL.info, 401, 'unauthorized'],
      [LEVEL.info, 403, 'origin'],
    ])
    assert.equal(refusals.find((l) => l['status'] === 401)?.trace, TRACE_ID, 'the refusal carries the traceparent trace id')
    const badFrame = about('bad frame')
    assert.equal(badFrame.length, 1)
    assert.equal(badFrame[0]?.level, LEVEL.info)
    const commandFailed = about('command failed')
    assert.equal(commandFailed.length, 1)
    assert.equal(commandFailed[0]?.level, LEVEL.error)
    assert.equal(commandFailed[0]?.client, tracedId)
    assert.equal(commandFailed[0]?.trace, TRACE_ID)
    const hookFailed = about('application hook failed')
    assert.equal(hookFailed.length, 1)
    assert.equal(hookFailed[0]?.level, LEVEL.error)
    assert.equal(hookFailed[0]?.['hook'], 'onPublish')
    assert.equal(hookFailed[0]?.client, tracedId)
    assert.equal(hookFailed[0]?.trace, TRACE_ID)
  })

  it('redacts tokens, payloads and credentials that a log call passes by mistake', async () => {
    const mem = memoryLogger()
    const s = await start({ logger: mem.logger })
    const log = s.gw.log as pino.Logger
    log.info({ token: TOKEN, cmd: { token: TOKEN, data: PAYLOAD }, req: { headers: { authorization: `Bearer ${TOKEN}`, cookie: TOKEN } } }, 'oops')
    const c = fx.client(s.url)
    await c.connect()
    const conn = [...s.gw.connections][0]
    conn?.log?.warn({ data: PAYLOAD }, 'oops again')
    const raw = mem.raw()
    assert.ok(!raw.includes(TOKEN) && !raw.includes(PAYLOAD), raw)
    const oops = mem.lines().filter((l) => l.msg?.startsWith('oops'))
    assert.equal(oops.length, 2)
    assert.equal(oops[0]?.['token'], '[redacted]')
    assert.deepEqual(oops[0]?.['cmd'], { token: '[redacted]', data: '[redacted]' })
    assert.equal(oops[1]?.['data'], '[redacted]')
    assert.equal(oops[1]?.client, conn?.id)
  })

  it('the default logger (none given) writes JSON lines with the node id, and redacts too', () => {
    // The default logger writes to stdout, so it is exercised in a child process.
    const gateway = new URL('../src/gateway.ts', import.meta.url).href
    const script = [
      `const { Gateway } = await import(${JSON.stringify(gateway)})`,
      `const gw = new Gateway({ nodeId: 'node-under-test' })`,
      `gw.log.info({ token: ${JSON.stringify(TOKEN)}, cmd: { data: ${JSON.stringify(PAYLOAD)} } }, 'oops')`,
      `gw.log.debug('below the default level')`,
      `await gw.close({ drainMs: 0 })`,
    ].join('\n')
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env['HOLDFAST_LOG_LEVEL']
    const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env, timeout: 30_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.ok(!r.stdout.includes(TOKEN) && !r.stdout.includes(PAYLOAD), r.stdout)
    const lines = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line)
    const oops = lines.find((l) => l.msg === 'oops')
    assert.ok(oops !== undefined, r.stdout)
    assert.equal(oops.level, LEVEL.info)
    assert.equal(oops['node'], 'node-under-test')
    assert.equal(oops['token'], '[redacted]')
    assert.deepEqual(oops['cmd'], { data: '[redacted]' })
    assert.ok(!lines.some((l) => l.msg === 'below the default level'), 'the default level is info')
  })
})
