import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import { connectionCap, FD_RESERVE, openFileLimit } from '../src/fd-limit.js'
import { cleanEnv, connectClient, ROOT, within, type TestClient } from './helpers.js'

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             95000                95000                processes
Max open files            20000                40000                files
`

describe('the node connection cap follows the open-file limit', () => {
  test('reads the soft limit, and caps only when the limit is the lower bound', () => {
    assert.equal(openFileLimit(() => LIMITS), 20000)
    assert.equal(openFileLimit(() => 'Max open files            unlimited            unlimited            files\n'), undefined)
    assert.equal(openFileLimit(() => {
      throw new Error('ENOENT')
    }), undefined)
    assert.equal(connectionCap(100_000, 20_000), 20_000 - FD_RESERVE)
    assert.equal(connectionCap(5_000, 20_000), 5_000)
    assert.equal(connectionCap(100_000, undefined), 100_000)
    assert.equal(connectionCap(100_000, 10), 1)
  })

  test('holdfast serve under ulimit -n refuses past the cap with 503 instead of running out of descriptors', async (t) => {
    const cap = 20
    const script = `ulimit -n ${cap + FD_RESERVE} && exec "$@"`
    const child = spawn('bash', ['-c', script, 'bash', process.execPath, '--conditions=source', '--import', 'tsx', 'packages/cli/src/bin.ts', 'serve', '--port', '0'], {
      cwd: ROOT,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.after(() => child.kill('SIGKILL'))
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    const wsUrl = await within(30_000, 'the listening line', new Promise<string>((resolve, reject) => {
      child.stdout.on('data', () => {
        const m = /\((ws:\/\/\S+)\)/.exec(out)
        if (m !== null) resolve(m[1] as string)
      })
      child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)))
    }))
    // The startup log (written right after the listening line) names the cap it derived.
    const started = await within(10_000, 'the startup log line', new Promise<string>((resolve) => {
      const check = (): void => {
        const line = out.split('\n').find((l) => l.includes('holdfast started'))
        if (line !== undefined) resolve(line)
      }
      child.stdout.on('data', check)
      check()
    }))
    assert.match(started, new RegExp(`"maxConnections":${cap}\\b`))
    const clients: TestClient[] = []
    for (let i = 0; i < cap; i++) clients.push(await connectClient(wsUrl))
    t.after(() => {
      for (const c of clients) c.ws.terminate()
    })
    const status = await within(10_000, 'the refusal', new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(wsUrl)
      // Ending the refused handshake ourselves makes ws report it as an error: expected here.
      ws.on('error', () => {})
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0)
        ws.terminate()
      })
      ws.once('open', () => reject(new Error(`connection ${cap + 1} was admitted`)))
    }))
    assert.equal(status, 503)
  })
})
