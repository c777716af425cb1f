// The subscriptions hooks share: one per channel and client, released a macrotask after the last
// hook lets go (so StrictMode's unmount-remount costs nothing on the wire), and never ended by the
// hooks when the application made it itself.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HoldfastClient } from '@holdfast/client'
import { WebSocket } from 'ws'
import { release, retain } from '../src/shared-subscriptions.js'

const tick = () => new Promise((r) => setTimeout(r, 5))

test('retain/release: shared per channel, released late, a quick retain keeps it', async () => {
  const client = new HoldfastClient('ws://127.0.0.1:9/ws', { WebSocket })
  const a = retain(client, 'c')
  const b = retain(client, 'c')
  assert.equal(a, b)
  release(client, 'c', a)
  release(client, 'c', b)
  // StrictMode's remount comes before any macrotask.
  const again = retain(client, 'c')
  assert.equal(again, a)
  await tick()
  assert.notEqual(a.state, 'unsubscribed')
  release(client, 'c', again)
  assert.notEqual(a.state, 'unsubscribed', 'not at once')
  await tick()
  assert.equal(a.state, 'unsubscribed')
  assert.equal(client.getSubscription('c'), undefined)
  const fresh = retain(client, 'c')
  assert.notEqual(fresh, a, 'an ended subscription is replaced')
  client.close()
})

test('a subscription the application made is shared but never ended by the hooks', async () => {
  const client = new HoldfastClient('ws://127.0.0.1:9/ws', { WebSocket })
  const own = client.subscribe('mine')
  const held = retain(client, 'mine')
  assert.equal(held, own)
  release(client, 'mine', held)
  await tick()
  assert.notEqual(own.state, 'unsubscribed')
  assert.equal(client.getSubscription('mine'), own)
  client.close()
})
