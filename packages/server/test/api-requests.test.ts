import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import Fastify from 'fastify'
import { createHoldfast } from '../src/index.js'
import { holdfastApi } from '../src/api/index.js'
import { API_KEY, startApi, type ApiServer } from './api-helpers.js'

describe('server HTTP API: authentication', () => {
  let s: ApiServer
  before(async () => {
    s = await startApi()
  })
  after(() => s.close())

  it('no Authorization header: 401 unauthorized, and nothing is done', async () => {
    const alice = await s.client('alice')
    await alice.call({ type: 'subscribe', channel: 'guarded' })
    const r = await s.call('publish', { channel: 'guarded', data: 1 }, { key: null })
    assert.equal(r.status, 401)
    assert.equal(r.body.error.code, 'unauthorized')
    assert.match(r.body.error.message, /Authorization: apikey/)
    assert.equal(r.headers.get('www-authenticate'), 'apikey')
    const top = await s.call('history', { channel: 'guarded', limit: 0 })
    assert.equal(top.body.offset, 0, 'the unauthorized publish stored nothing')
  })

  it('a wrong key, a prefix of the key, or another scheme: 401', async () => {
    for (const authorization of [`apikey ${API_KEY}x`, `apikey ${API_KEY.slice(0, -1)}`, 'apikey ', `Bearer ${API_KEY}`, API_KEY, `apikey ${API_KEY} extra`]) {
      const res = await fetch(`${s.base}/api/info`, { method: 'POST', headers: { authorization } })
      assert.equal(res.status, 401, authorization)
      assert.deepEqual(await res.json(), { error: { code: 'unauthorized', message: 'invalid API key' } }, authorization)
    }
  })

  it('the right key is accepted, with the scheme in any case', async () => {
    for (const authorization of [`apikey ${API_KEY}`, `ApiKey ${API_KEY}`, `APIKEY  ${API_KEY}`]) {
      const res = await fetch(`${s.base}/api/info`, { method: 'POST', headers: { authorization } })
      assert.equal(res.status, 200, authorization)
    }
  })

  it('GET info needs the key; the OpenAPI document does not', async () => {
    assert.equal((await fetch(`${s.base}/api/info`)).status, 401)
    assert.equal((await fetch(`${s.base}/api/info`, { headers: { authorization: `apikey ${API_KEY}` } })).status, 200)
    const doc = await fetch(`${s.base}/api/openapi.json`)
    assert.equal(doc.status, 200)
    assert.match(doc.headers.get('content-type') ?? '', /^application\/json/)
  })

  it('an unknown method is 401 without the key and 404 method_not_found with it', async () => {
    assert.equal((await s.call('nope', {}, { key: null })).status, 401)
    const r = await s.call('nope', {})
    assert.equal(r.status, 404)
    assert.equal(r.body.error.code, 'method_not_found')
    assert.match(r.body.error.message, /nope/)
  })

  it('the auth hook and error handler stay inside the plugin: host routes are untouched', async () => {
    const res = await fetch(`${s.base}/hello`)
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { hello: 'world' })
  })
})

describe('server HTTP API: refuses to register without a usable key', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['no apiKey', undefined, /"apiKey" option is required/],
    ['an empty apiKey', '', /"apiKey" option is required/],
    ['a non-string apiKey', 12345, /"apiKey" option is required/],
    ['an apiKey with whitespace', 'two words', /must not contain whitespace/],
  ]
  for (const [name, apiKey, message] of cases) {
    it(name, async () => {
      const holdfast = createHoldfast({ logger: false })
      const app = Fastify()
      try {
        await assert.rejects(
          async () => {
            await app.register(holdfastApi, { holdfast, apiKey } as never)
            await app.ready()
          },
          (err: Error) => err instanceof TypeError && message.test(err.message),
        )
      } finally {
        await holdfast.close({ drainMs: 0 })
      }
    })
  }

  it('no gateway', async () => {
    const app = Fastify()
    await assert.rejects(
      async () => {
        await app.register(holdfastApi, { apiKey: 'k' } as never)
        await app.ready()
      },
      (err: Error) => err instanceof TypeError && /"holdfast" option is required/.test(err.message),
    )
  })
})

describe('server HTTP API: invalid input is 400 bad_request naming the field', () => {
  let s: ApiServer
  before(async () => {
    s = await startApi()
  })
  after(() => s.close())

  const cases: Array<[method: string, body: unknown, message: RegExp]> = [
    ['publish', {}, /^body\.channel is required$/],
    ['publish', { channel: 'a' }, /^body\.data is required$/],
    ['publish', { channel: 'a', data: 1, idempotencykey: 'k' }, /^body\.idempotencykey is not a known field$/],
    ['publish', { channel: 'a', data: 1, idempotencyKey: '' }, /^body\.idempotencyKey must NOT have fewer than 1 characters$/],
    ['publish', { channel: { name: 'a' }, data: 1 }, /^body\.channel must be string$/],
    ['publish', [1, 2], /^body must be object$/],
    ['broadcast', { channels: [], data: 1 }, /^body\.channels must NOT have fewer than 1 items$/],
    ['broadcast', { channels: ['a', 'a'], data: 1 }, /^body\.channels must NOT have duplicate items/],
    ['broadcast', { channels: ['a', { c: 1 }], data: 1 }, /^body\.channels\[1\] must be string$/],
    ['broadcast', { channels: Array.from({ length: 1001 }, (_, i) => `c${i}`), data: 1 }, /^body\.channels must NOT have more than 1000 items$/],
    ['disconnect', {}, /^body needs one of the fields user, client$/],
    ['disconnect', { user: 'alice', code: 'abnormal' }, /^body\.code must be one of normal, going_away, .*kicked/],
    ['disconnect', { user: 'alice', reason: 'x'.repeat(121) }, /^body\.reason must NOT have more than 120 characters$/],
    ['disconnect', { user: '' }, /^body\.user must NOT have fewer than 1 characters$/],
    ['subscribe', { user: 'alice' }, /^body\.channel is required$/],
    ['unsubscribe', { channel: 'a' }, /^body\.user is required$/],
    ['presence', { channel: 'a', extra: true }, /^body\.extra is not a known field$/],
    ['presence_stats', {}, /^body\.channel is required$/],
    ['history', { channel: 'a', since: { offset: -1, epoch: 'e' } }, /^body\.since\.offset must be >= 0$/],
    ['history', { channel: 'a', since: { offset: 1 } }, /^body\.since\.epoch is required$/],
    ['history', { channel: 'a', limit: 1.5 }, /^body\.limit must be integer$/],
    ['channels', { verbose: true }, /^body\.verbose is not a known field$/],
    ['info', { x: 1 }, /^body\.x is not a known field$/],
    ['send', { data: 1 }, /^body needs one of the fields user, client$/],
    ['send', { user: 'alice' }, /^body\.data is required$/],
  ]
  for (const [method, body, message] of cases) {
    it(`${method} ${JSON.stringify(body).slice(0, 60)}`, async () => {
      const r = await s.call(method, body)
      assert.equal(r.status, 400)
      assert.equal(r.body.error.code, 'bad_request')
      assert.match(r.body.error.message, message)
    })
  }

  it('the Idempotency-Key header is validated too, and named as a header', async () => {
    const r = await s.call('publish', { channel: 'a', data: 1 }, { headers: { 'idempotency-key': 'k'.repeat(257) } })
    assert.equal(r.status, 400)
    assert.equal(r.body.error.code, 'bad_request')
    assert.match(r.body.error.message, /^headers\.idempotency-key must NOT have more than 256 characters$/)
  })

  it('malformed JSON is 400, another content type 415, an oversized body 413 — all JSON with a code', async () => {
    const broken = await s.call('publish', undefined, { raw: '{"channel": "a", ' })
    assert.equal(broken.status, 400)
    assert.equal(broken.body.error.code, 'bad_request')
    const form = await s.call('publish', undefined, { raw: 'channel=a&data=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    assert.equal(form.status, 415)
    assert.equal(form.body.error.code, 'bad_request')
    const big = await s.call('publish', { channel: 'a', data: 'x'.repeat(2 * 1024 * 1024) })
    assert.equal(big.status, 413)
    assert.equal(big.body.error.code, 'payload_too_large')
  })

  it('a rejected request has no effect', async () => {
    const alice = await s.client('alice')
    await alice.call({ type: 'subscribe', channel: 'untouched' })
    await s.call('publish', { channel: 'untouched', data: 1, idempotencykey: 'typo' })
    await s.call('disconnect', { user: 'alice', code: 'abnormal' })
    const top = await s.call('history', { channel: 'untouched', limit: 0 })
    assert.equal(top.body.offset, 0)
    await alice.call({ type: 'ping' })
    assert.equal(alice.closed, undefined)
  })
})
