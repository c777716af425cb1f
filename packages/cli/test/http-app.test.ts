import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { MemoryEngine, createHoldfast } from '@holdfast/server'
import { buildHttpApp } from '../src/http-app.js'

/** An engine that reports itself down, as a Redis engine does while Redis is away. */
class DownEngine extends MemoryEngine {
  override isReady(): boolean {
    return false
  }
}

describe('HTTP app (in process, app.inject)', () => {
  test('/healthz and /readyz follow the gateway: ready, then draining', async (t) => {
    const holdfast = createHoldfast({ logger: false })
    const app = await buildHttpApp({ holdfast, logger: false })
    t.after(() => app.close())
    const health = await app.inject('/healthz')
    assert.equal(health.statusCode, 200)
    assert.deepEqual(health.json(), { status: 'ok' })
    assert.equal((await app.inject('/readyz')).statusCode, 200)

    await holdfast.close({ drainMs: 0 })
    const ready = await app.inject('/readyz')
    assert.equal(ready.statusCode, 503)
    assert.deepEqual(ready.json(), { status: 'draining' })
    // Liveness does not depend on readiness: a draining node is still alive.
    assert.equal((await app.inject('/healthz')).statusCode, 200)
  })

  test('/readyz is 503 not_ready while the engine is down', async (t) => {
    const holdfast = createHoldfast({ logger: false, engine: new DownEngine() })
    const app = await buildHttpApp({ holdfast, logger: false })
    t.after(() => app.close())
    const ready = await app.inject('/readyz')
    assert.equal(ready.statusCode, 503)
    assert.deepEqual(ready.json(), { status: 'not_ready' })
  })

  test('serves the public folder at /, and nothing outside it', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'holdfast-cli-'))
    const publicDir = join(root, 'public')
    await import('node:fs/promises').then((fs) => fs.mkdir(publicDir))
    writeFileSync(join(publicDir, 'index.html'), '<h1>demo</h1>')
    writeFileSync(join(publicDir, 'app.js'), 'console.log(1)')
    writeFileSync(join(root, 'secret.txt'), 'do not serve')
    const holdfast = createHoldfast({ logger: false })
    const app = await buildHttpApp({ holdfast, logger: false, publicDir })
    t.after(() => app.close())

    const index = await app.inject('/')
    assert.equal(index.statusCode, 200)
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8')
    assert.equal(index.body, '<h1>demo</h1>')
    const js = await app.inject('/app.js')
    assert.equal(js.statusCode, 200)
    assert.match(String(js.headers['content-type']), /^(text|application)\/javascript; charset=utf-8$/)
    assert.equal(js.headers['x-content-type-options'], 'nosniff')
    for (const url of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/missing.css']) {
      assert.equal((await app.inject(url)).statusCode, 404, url)
    }
  })

  test('the packaged placeholder page exists', async (t) => {
    const holdfast = createHoldfast({ logger: false })
    const app = await buildHttpApp({ holdfast, logger: false })
    t.after(() => app.close())
    const index = await app.inject('/')
    assert.equal(index.statusCode, 200)
    assert.match(index.body, /holdfast/)
  })
})
