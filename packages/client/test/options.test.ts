import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebSocket } from 'ws'
import { DEFAULTS, resolveOptions, type ClientOptions } from '../src/options.js'

test('defaults', () => {
  const o = resolveOptions('ws://localhost:1/ws', { WebSocket })
  assert.deepEqual(o.urls, ['ws://localhost:1/ws'])
  assert.equal(o.WebSocket, WebSocket)
  for (const [key, value] of Object.entries(DEFAULTS)) assert.equal(o[key as keyof typeof o], value, key)
  assert.equal(o.maxReconnectAttempts, Infinity)
})

test('several URLs are kept in order', () => {
  assert.deepEqual(resolveOptions(['ws://a/ws', 'wss://b/ws'], { WebSocket }).urls, ['ws://a/ws', 'wss://b/ws'])
})

test('an http(s) URL or a function is a discovery source, with no fixed list', () => {
  const byUrl = resolveOptions('https://a.example/discovery', { WebSocket })
  assert.deepEqual([byUrl.urls, byUrl.discovery, byUrl.discoveryTtlMs], [[], 'https://a.example/discovery', 30_000])
  const fn = () => ['ws://a/ws']
  assert.equal(resolveOptions(fn, { WebSocket, discoveryTtlMs: 5000 }).discovery, fn)
})

test('without a WebSocket option and without globalThis.WebSocket it says what to pass', (t) => {
  const g = globalThis as { WebSocket?: unknown }
  const saved = g.WebSocket
  delete g.WebSocket
  t.after(() => {
    if (saved !== undefined) g.WebSocket = saved
  })
  assert.throws(() => resolveOptions('ws://a/ws', {}), (err: unknown) => err instanceof TypeError && /"WebSocket"/.test(err.message) && /ws/.test(err.message))
})

test('a bad option throws a TypeError naming it', () => {
  const cases: Array<[string | string[], ClientOptions, string]> = [
    ['ftp://a', {}, 'url'],
    ['ws://a', { discoveryTtlMs: 0 }, 'discoveryTtlMs'],
    [[], {}, 'url'],
    [['ws://a', 'nope'], {}, 'url'],
    ['ws://a', { protocol: 'xml' as 'json' }, 'protocol'],
    ['ws://a', { token: 5 as unknown as string }, 'token'],
    ['ws://a', { getToken: 'x' as unknown as () => string }, 'getToken'],
    ['ws://a', { minReconnectDelayMs: -1 }, 'minReconnectDelayMs'],
    ['ws://a', { minReconnectDelayMs: Number.NaN }, 'minReconnectDelayMs'],
    ['ws://a', { maxReconnectDelayMs: 100, minReconnectDelayMs: 200 }, 'maxReconnectDelayMs'],
    ['ws://a', { maxReconnectDelayMs: Infinity }, 'maxReconnectDelayMs'],
    ['ws://a', { maxReconnectAttempts: -1 }, 'maxReconnectAttempts'],
    ['ws://a', { maxReconnectAttempts: 1.5 }, 'maxReconnectAttempts'],
    ['ws://a', { connectTimeoutMs: 0 }, 'connectTimeoutMs'],
    ['ws://a', { commandTimeoutMs: 0 }, 'commandTimeoutMs'],
    ['ws://a', { maxQueuedCommands: 0 }, 'maxQueuedCommands'],
    ['ws://a', { maxQueuedBytes: 1.5 }, 'maxQueuedBytes'],
    ['ws://a', { maxBatch: 0 }, 'maxBatch'],
    ['ws://a', { stableAfterMs: -5 }, 'stableAfterMs'],
    ['ws://a', { maxServerPingDelayMs: Number.POSITIVE_INFINITY }, 'maxServerPingDelayMs'],
    ['ws://a', { restartJitterMs: -1 }, 'restartJitterMs'],
  ]
  for (const [url, options, name] of cases) {
    assert.throws(
      () => resolveOptions(url, { WebSocket, ...options }),
      (err: unknown) => err instanceof TypeError && err.message.includes(`"${name}"`),
      `expected a TypeError naming ${name}`,
    )
  }
})

test('maxReconnectAttempts accepts 0 and Infinity', () => {
  assert.equal(resolveOptions('ws://a', { WebSocket, maxReconnectAttempts: 0 }).maxReconnectAttempts, 0)
  assert.equal(resolveOptions('ws://a', { WebSocket, maxReconnectAttempts: Infinity }).maxReconnectAttempts, Infinity)
})
