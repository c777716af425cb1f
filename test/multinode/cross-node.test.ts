/**
 * Three `holdfast serve --engine redis` processes on one real redis-server act as one system: a
 * publication made on one node reaches the subscribers of every node exactly once, presence lists
 * the clients of every node, and `GET /api/info` lists the live nodes with their connections.
 * The same test runs on a Redis Cluster (three primaries, three replicas; sharded pub/sub).
 */
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { RedisCluster } from '../support/redis-topology.js'
import { apiGet, makeClient, REDIS_SERVER, requireBinary, startFleet, startRedis, until } from './fleet.js'
import { AppLog, now, range } from '../chaos/history.js'

const CONFIG = { channels: { namespaces: { room: { presence: true, joinLeave: true } } } }

interface InfoBody {
  node: { id: string; ready: boolean }
  nodes: { id: string; connections: number; subscriptions: number }[]
  registry: string
}

const TOPOLOGIES: Array<[string, (t: TestContext) => Promise<string>]> = [
  ['one Redis', async (t) => (await startRedis(t)).url],
  [
    'a Redis Cluster',
    async (t) => {
      const cluster = await RedisCluster.start()
      t.after(() => cluster.close())
      return cluster.url
    },
  ],
]

describe('multi-node: cross-node publish and presence', () => {
  for (const [name, redisUrl] of TOPOLOGIES) it(`on ${name}: a publish on node 1 reaches clients on nodes 1, 2 and 3 once; presence and /api/info see the whole fleet`, async (t) => {
    if (!requireBinary(t, REDIS_SERVER, 'redis-server')) return
    const nodes = await startFleet(t, await redisUrl(t), 3, { config: CONFIG })
    const channel = 'room:lobby'

    const clients = nodes.map((n) => makeClient(t, n.wsUrl, { name: `client-on-${n.id}` }))
    const logs = clients.map((c) => new AppLog(c, 'subscriber', channel))
    const joins: string[] = []
    logs[0]?.sub.on('join', (e) => joins.push(e.info.client))
    // Client 1 subscribes first, so that the joins of the clients on nodes 2 and 3 come after it.
    clients[0]?.connect()
    await logs[0]?.until('client 1 subscribed', () => logs[0]?.subscribes.length === 1, 15_000)
    for (const c of clients.slice(1)) c.connect()
    await Promise.all(logs.map((l, i) => l.until(`client ${i + 1} subscribed`, () => l.subscribes.length === 1, 15_000)))
    assert.deepEqual(
      logs.map((l) => l.node),
      nodes.map((n) => n.id),
      'each client is on its own node',
    )
    const clientIds = logs.map((l) => l.connects[0]?.client ?? '')

    // Publications from node 1, 2 and 3, in turn; each must reach all three clients once, in order.
    const publishers = [clients[0], clients[1], clients[2], clients[0]]
    for (const [i, c] of publishers.entries()) {
      const ack = await c?.publish(channel, { pub: 'fleet', seq: i + 1, t: now() })
      assert.equal(ack?.offset, i + 1)
    }
    await Promise.all(logs.map((l) => l.untilSeq(publishers.length, 15_000)))
    for (const [i, l] of logs.entries()) {
      assert.deepEqual(
        l.pubs.map((p) => [p.offset, p.seq]),
        range(publishers.length).map((k) => [k, k]),
        `client on node ${i + 1}: every publication once, in order`,
      )
    }

    // Presence is fleet-wide: asked on any node, it lists the clients of all three.
    for (const c of clients) {
      const presence = await c.presence(channel)
      assert.deepEqual(Object.keys(presence.clients).sort(), [...clientIds].sort())
    }
    assert.deepEqual((await clients[1]?.presenceStats(channel)), { clients: 3, users: 1 }, 'anonymous clients share one user')
    // Joins of the clients on nodes 2 and 3 reached node 1 (whose client subscribed first).
    await logs[0]?.until('joins from nodes 2 and 3', () => joins.includes(clientIds[1] ?? '') && joins.includes(clientIds[2] ?? ''), 15_000)

    // The node registry: every node refreshes its entry every 5 s, so wait for the counts to show.
    let info: InfoBody | undefined
    await until(
      '/api/info to list 3 nodes with one connection each',
      async () => {
        const r = await apiGet<InfoBody>(nodes[0] ?? assert.fail(), 'info')
        assert.equal(r.status, 200)
        info = r.body
        return info.nodes.length === 3 && info.nodes.every((n) => n.connections === 1 && n.subscriptions === 1)
      },
      12_000,
      250,
    )
    assert.equal(info?.registry, 'ok')
    assert.deepEqual(info?.nodes.map((n) => n.id).sort(), ['n1', 'n2', 'n3'])
    assert.equal(info?.node.id, 'n1')
    assert.equal(info?.node.ready, true)

    // A client that leaves disappears from presence on every node at once (no TTL wait).
    clients[2]?.close()
    const gone = clientIds[2] ?? ''
    for (const c of clients.slice(0, 2)) {
      await until('the closed client to leave presence', async () => !(gone in (await c.presence(channel)).clients), 5000)
    }
  })
})
