import assert from 'node:assert/strict'
import { test } from 'node:test'
import { IpLimiter, normalizeIp } from '../src/limits/ip-limiter.js'

const generousRate = { perSecond: 1e6, burst: 1e6 }

test('caps live connections per IP, and release frees a place', () => {
  const l = new IpLimiter({ maxConnectionsPerIp: 2, connectRate: generousRate })
  assert.equal(l.acquire('10.0.0.1', 0), 'ok')
  assert.equal(l.acquire('10.0.0.1', 0), 'ok')
  assert.equal(l.acquire('10.0.0.1', 0), 'too_many_connections')
  assert.equal(l.connections('10.0.0.1'), 2, 'a refused attempt is not counted')
  assert.equal(l.acquire('10.0.0.2', 0), 'ok', 'other IPs are independent')
  l.release('10.0.0.1')
  assert.equal(l.connections('10.0.0.1'), 1)
  assert.equal(l.acquire('10.0.0.1', 0), 'ok')
  assert.equal(l.acquire('10.0.0.1', 0), 'too_many_connections')
})

test('limits the connection rate per IP with a token bucket', () => {
  const l = new IpLimiter({ maxConnectionsPerIp: 100, connectRate: { perSecond: 2, burst: 3 } })
  for (let i = 0; i < 3; i++) assert.equal(l.acquire('10.0.0.1', 0), 'ok')
  assert.equal(l.acquire('10.0.0.1', 0), 'rate_limited')
  assert.equal(l.connections('10.0.0.1'), 3, 'rate_limited does not count a connection')
  assert.equal(l.acquire('10.0.0.2', 0), 'ok', 'another IP has its own bucket')
  assert.equal(l.acquire('10.0.0.1', 499), 'rate_limited')
  assert.equal(l.acquire('10.0.0.1', 500), 'ok', 'one token back after 1/perSecond')
  assert.equal(l.connections('10.0.0.1'), 4)
})

test('an attempt refused at the cap still costs a rate token', () => {
  const l = new IpLimiter({ maxConnectionsPerIp: 1, connectRate: { perSecond: 1, burst: 3 } })
  assert.equal(l.acquire('10.0.0.1', 0), 'ok')
  assert.equal(l.acquire('10.0.0.1', 0), 'too_many_connections')
  assert.equal(l.acquire('10.0.0.1', 0), 'too_many_connections')
  // Hammering at the cap drained the bucket.
  assert.equal(l.acquire('10.0.0.1', 0), 'rate_limited')
  l.release('10.0.0.1')
  assert.equal(l.acquire('10.0.0.1', 0), 'rate_limited', 'a free place does not refund the tokens spent')
  assert.equal(l.acquire('10.0.0.1', 1000), 'ok')
})

test('release never goes negative and ignores unknown IPs', () => {
  const l = new IpLimiter({ maxConnectionsPerIp: 1, connectRate: generousRate })
  l.release('10.9.9.9')
  assert.equal(l.size, 0, 'releasing an unknown IP creates nothing')
  assert.equal(l.acquire('10.0.0.1', 0), 'ok')
  l.release('10.0.0.1')
  l.release('10.0.0.1')
  l.release('10.0.0.1')
  assert.equal(l.connections('10.0.0.1'), 0)
  assert.equal(l.acquire('10.0.0.1', 0), 'ok')
  // Had the extra releases gone negative, the cap of 1 would now let a second one in.
  assert.equal(l.acquire('10.0.0.1', 0), 'too_many_connections')
})

test('IPv4-mapped IPv6 addresses share the IPv4 identity', () => {
  assert.equal(normalizeIp('::ffff:1.2.3.4'), '1.2.3.4')
  assert.equal(normalizeIp('::FFFF:1.2.3.4'), '1.2.3.4')
  assert.equal(normalizeIp('1.2.3.4'), '1.2.3.4')
  assert.equal(normalizeIp('::1'), '::1')
  assert.equal(normalizeIp('::ffff:abcd'), '::ffff:abcd', 'a plain IPv6 address that starts like a mapped one')
  assert.equal(normalizeIp('2001:db8::1'), '2001:db8::1')

  const l = new IpLimiter({ maxConnectionsPerIp: 2, connectRate: generousRate })
  assert.equal(l.acquire('::ffff:1.2.3.4', 0), 'ok')
  assert.equal(l.acquire('1.2.3.4', 0), 'ok')
  assert.equal(l.acquire('::ffff:1.2.3.4', 0), 'too_many_connections')
  assert.equal(l.connections('1.2.3.4'), 2)
  assert.equal(l.connections('::ffff:1.2.3.4'), 2)
  assert.equal(l.size, 1)
  l.release('::ffff:1.2.3.4')
  assert.equal(l.connections('1.2.3.4'), 1)
})

test('sweep forgets idle IPs once their bucket is full, and keeps the rest', () => {
  const l = new IpLimiter({ maxConnectionsPerIp: 10, connectRate: { perSecond: 10, burst: 2 } })
  l.acquire('10.0.0.1', 0) // stays connected
  l.acquire('10.0.0.2', 0)
  l.release('10.0.0.2') // gone, bucket at 1 of 2
  l.acquire('10.0.0.3', 0)
  l.acquire('10.0.0.3', 0)
  l.release('10.0.0.3')
  l.release('10.0.0.3') // gone, bucket empty
  assert.equal(l.size, 3)

  l.sweep(50)
  assert.equal(l.size, 3, 'buckets still refilling are remembered')
  assert.equal(l.acquire('10.0.0.3', 50), 'rate_limited', 'so that sweeping does not forgive a burst')

  l.sweep(100)
  assert.equal(l.size, 2, '10.0.0.2 refilled after 100 ms and is forgotten')
  assert.equal(l.connections('10.0.0.2'), 0)
  l.sweep(250) // 10.0.0.3 was last charged at 50 ms: 2 tokens need 200 ms
  assert.equal(l.size, 1)
  l.sweep(1e9)
  assert.equal(l.size, 1, 'an IP with a live connection is never forgotten')
  assert.equal(l.connections('10.0.0.1'), 1)
})

test('sweep forgets IPs idle longer than idleMs even if their bucket refills slowly', () => {
  const l = new IpLimiter({ maxConnectionsPerIp: 10, connectRate: { perSecond: 0.001, burst: 5 }, idleMs: 1000 })
  l.acquire('10.0.0.1', 0)
  l.release('10.0.0.1')
  l.sweep(1000)
  assert.equal(l.size, 1)
  l.sweep(1001)
  assert.equal(l.size, 0)
})

test('memory stays bounded under a flood of 100k distinct IPs', () => {
  // One token refills in 100 ms; a sweep every 50 ms keeps at most ~150 ms of arrivals.
  const l = new IpLimiter({ maxConnectionsPerIp: 10, connectRate: { perSecond: 10, burst: 1 } })
  const perMs = 100
  let peak = 0
  let n = 0
  for (let now = 0; n < 100_000; now++) {
    for (let i = 0; i < perMs; i++, n++) {
      const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`
      assert.equal(l.acquire(ip, now), 'ok')
      l.release(ip)
    }
    if (now % 50 === 0) l.sweep(now)
    if (l.size > peak) peak = l.size
  }
  assert.ok(peak <= 151 * perMs, `peak ${peak} entries`)
  l.sweep(1_000 + 100)
  assert.equal(l.size, 0, 'everything is forgotten once the flood stops')
})

test('memory stays bounded: 100k distinct IPs then one sweep', () => {
  const l = new IpLimiter({ maxConnectionsPerIp: 10, connectRate: { perSecond: 100, burst: 200 } })
  for (let n = 0; n < 100_000; n++) {
    const ip = `2001:db8::${n.toString(16)}`
    l.acquire(ip, 0)
    l.release(ip)
  }
  assert.equal(l.size, 100_000)
  l.sweep(5)
  assert.equal(l.size, 100_000, 'not yet refilled')
  l.sweep(10)
  assert.equal(l.size, 0)
})

test('rejects invalid options with a TypeError naming the option', () => {
  const rate = { perSecond: 1, burst: 1 }
  assert.throws(() => new IpLimiter({ maxConnectionsPerIp: 0, connectRate: rate }), /maxConnectionsPerIp/)
  assert.throws(() => new IpLimiter({ maxConnectionsPerIp: 1.5, connectRate: rate }), /maxConnectionsPerIp/)
  assert.throws(() => new IpLimiter({ maxConnectionsPerIp: 1, connectRate: { perSecond: 0, burst: 1 } }), /connectRate\.perSecond/)
  assert.throws(() => new IpLimiter({ maxConnectionsPerIp: 1, connectRate: { perSecond: 1, burst: 0.5 } }), /connectRate\.burst/)
  assert.throws(() => new IpLimiter({ maxConnectionsPerIp: 1, connectRate: rate, idleMs: -1 }), /idleMs/)
  const unlimited = new IpLimiter({ maxConnectionsPerIp: Infinity, connectRate: generousRate })
  for (let i = 0; i < 1000; i++) assert.equal(unlimited.acquire('10.0.0.1', 0), 'ok')
})
