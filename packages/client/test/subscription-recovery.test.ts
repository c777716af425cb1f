// The subscription's recovery path as a state machine, driven through its host seam
// (SubscriptionHost): what it asks the server for after a drop, a gap, a refusal or a server-side
// change, and what the application sees. The rule throughout: each publication once, in order,
// and a replay that cannot be trusted is reported as `recovered: false`, never passed off as one.
import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { HoldfastError, type ClientInfo, type ErrorCodeName, type PubPush, type StreamPosition, type SubscribeResult } from '@holdfast/protocol'
import { Subscription, type SubscribedEvent, type SubscribeReply, type SubscriptionHost, type UnsubscribedEvent } from '../src/subscription.js'

interface SentSubscribe {
  recover: StreamPosition | undefined
  reply: (r: SubscribeReply) => void
}

/** A host that records what the subscription asks of its client. */
class Host implements SubscriptionHost {
  connected = true
  readonly subscribes: SentSubscribe[] = []
  /** Every command in order: `sub` / `unsub`. */
  readonly log: string[] = []
  readonly delays: { attempt: number; advice: 'reconnect' | 'backoff' }[] = []
  forgotten = 0

  sendSubscribe(_channel: string, recover: StreamPosition | undefined, onReply: (reply: SubscribeReply) => void): void {
    this.subscribes.push({ recover, reply: onReply })
    this.log.push('sub')
  }
  sendUnsubscribe(): void {
    this.log.push('unsub')
  }
  forget(): void {
    this.forgotten++
  }
  /** Where the subscription stands (persisted by the client when it has storage). */
  readonly moves: Array<StreamPosition | undefined> = []
  moved(_channel: string, position: StreamPosition | undefined): void {
    this.moves.push(position)
  }
  retryDelay(attempt: number, advice: 'reconnect' | 'backoff'): number {
    this.delays.push({ attempt, advice })
    return 1000
  }
  get last(): SentSubscribe {
    const s = this.subscribes.at(-1)
    assert.ok(s, 'no subscribe was sent')
    return s
  }
}

interface Seen {
  pubs: { epoch: string; offset: number; info?: ClientInfo }[]
  subscribed: SubscribedEvent[]
  unsubscribed: UnsubscribedEvent[]
  errors: string[]
  joins: string[]
}

function watch(sub: Subscription): Seen {
  const seen: Seen = { pubs: [], subscribed: [], unsubscribed: [], errors: [], joins: [] }
  sub.on('publication', (p) => seen.pubs.push(p.info === undefined ? { epoch: p.epoch, offset: p.offset } : { epoch: p.epoch, offset: p.offset, info: p.info }))
  sub.on('subscribed', (s) => seen.subscribed.push(s))
  sub.on('unsubscribed', (u) => seen.unsubscribed.push(u))
  sub.on('error', (e) => seen.errors.push(e.code))
  sub.on('join', (j) => seen.joins.push(`join ${j.info.client}`))
  sub.on('leave', (j) => seen.joins.push(`leave ${j.info.client}`))
  return seen
}

const pub = (offset: number, epoch = 'E', info?: ClientInfo): PubPush =>
  info === undefined ? { type: 'pub', channel: 'ch', epoch, offset, data: offset } : { type: 'pub', channel: 'ch', epoch, offset, data: offset, info }
const ok = (offset: number, over: Partial<SubscribeResult> = {}): SubscribeReply => ({
  ok: true,
  result: { epoch: 'E', offset, recovered: false, wasRecovering: false, publications: [], ...over },
})
const replay = (from: number, to: number): SubscribeResult['publications'] => Array.from({ length: to - from + 1 }, (_, i) => ({ offset: from + i, data: from + i }))
const refused = (code: ErrorCodeName, temporary = false): SubscribeReply => ({ ok: false, error: new HoldfastError(code, code, { temporary }) })
const offsets = (seen: Seen): number[] => seen.pubs.map((p) => p.offset)

/** A subscription that is live at offset 10 of epoch E. */
function live(): { host: Host; sub: Subscription; seen: Seen } {
  const host = new Host()
  const sub = new Subscription('ch', host)
  const seen = watch(sub)
  sub._connected()
  host.last.reply(ok(10))
  assert.equal(sub.state, 'subscribed')
  return { host, sub, seen }
}

/** After a drop and a reconnect: the recovering subscribe is in flight. */
function reconnected(host: Host, sub: Subscription): SentSubscribe {
  sub._disconnected()
  sub._connected()
  return host.last
}

describe('subscription recovery', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }))
  afterEach(() => mock.timers.reset())

  describe('after a drop', () => {
    it('resubscribes from the last delivered position and delivers the replay, then live, exactly once', () => {
      const { host, sub, seen } = live()
      sub._publication(pub(11))
      const resub = reconnected(host, sub)
      assert.deepEqual(resub.recover, { epoch: 'E', offset: 11 })
      sub._publication(pub(13)) // live, before the reply: held
      resub.reply(ok(13, { recovered: true, wasRecovering: true, publications: replay(12, 13) }))
      sub._publication(pub(14))
      assert.deepEqual(offsets(seen), [11, 12, 13, 14])
      assert.deepEqual(seen.subscribed.at(-1), { channel: 'ch', recovered: true, wasRecovering: true, epoch: 'E', offset: 11 })
    })

    it('a reply to the subscribe the drop abandoned is ignored; so are publications while disconnected', () => {
      const { host, sub, seen } = live()
      const abandoned = reconnected(host, sub)
      sub._disconnected()
      sub._publication(pub(11))
      abandoned.reply(ok(11, { recovered: true, wasRecovering: true, publications: replay(11, 11) }))
      assert.equal(sub.state, 'subscribing')
      assert.deepEqual(offsets(seen), [])
      sub._connected()
      const current = host.last
      assert.notEqual(current, abandoned)
      assert.deepEqual(current.recover, { epoch: 'E', offset: 10 })
      current.reply(ok(11, { recovered: true, wasRecovering: true, publications: replay(11, 11) }))
      assert.deepEqual(offsets(seen), [11])
    })

    it('a reply to an abandoned subscribe that arrives after the next one was sent is still ignored', () => {
      const { host, sub, seen } = live()
      const abandoned = reconnected(host, sub)
      const current = reconnected(host, sub)
      abandoned.reply(ok(11, { recovered: true, wasRecovering: true, publications: replay(11, 11) }))
      assert.equal(sub.state, 'subscribing')
      assert.deepEqual(offsets(seen), [])
      current.reply(ok(10, { recovered: true, wasRecovering: true }))
      assert.equal(sub.state, 'subscribed')
      // The same after a server-side unsubscribe and its retry.
      const before = reconnected(host, sub)
      sub._serverUnsubscribed({ type: 'unsubscribe', channel: 'ch', code: 4000, reason: 'moving' })
      mock.timers.tick(1000)
      before.reply(ok(11, { recovered: true, wasRecovering: true, publications: replay(11, 11) }))
      assert.deepEqual(offsets(seen), [])
      assert.equal(sub.state, 'subscribing')
    })

    it('publications held for a subscribe that the drop abandoned are not delivered after the next one', () => {
      const { host, sub, seen } = live()
      reconnected(host, sub)
      sub._publication(pub(12)) // held for the first resubscribe
      const again = reconnected(host, sub)
      again.reply(ok(11, { recovered: true, wasRecovering: true, publications: replay(11, 11) }))
      assert.deepEqual(offsets(seen), [11])
      assert.equal(sub.state, 'subscribed')
    })

    it('without a connection nothing is sent; the next connect subscribes', () => {
      const host = new Host()
      host.connected = false
      const sub = new Subscription('ch', host)
      sub._connected()
      assert.deepEqual(host.log, [])
      host.connected = true
      sub._connected()
      assert.deepEqual(host.log, ['sub'])
      assert.equal(host.last.recover, undefined)
    })

    it('close keeps the position for a later connect; join and leave wait for the subscription to be live', () => {
      const { host, sub, seen } = live()
      sub._closed()
      sub._joinLeave('join', { client: 'x', user: 'u' })
      sub._connected()
      sub._joinLeave('leave', { client: 'x', user: 'u' })
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 10 })
      assert.deepEqual(seen.joins, [])
      host.last.reply(ok(10, { recovered: true, wasRecovering: true }))
      sub._joinLeave('join', { client: 'y', user: 'u' })
      assert.deepEqual(seen.joins, ['join y'])
    })
  })

  describe('replies that cannot be trusted', () => {
    it('"recovered" into another epoch is reported as recovered:false at the new position', () => {
      const { host, sub, seen } = live()
      const resub = reconnected(host, sub)
      resub.reply(ok(3, { epoch: 'F', recovered: true, wasRecovering: true, publications: replay(1, 3) }))
      assert.deepEqual(seen.subscribed.at(-1), { channel: 'ch', recovered: false, wasRecovering: true, epoch: 'F', offset: 3 })
      assert.deepEqual(offsets(seen), [], 'a replay of another epoch is not delivered')
      assert.deepEqual(sub.position, { epoch: 'F', offset: 3 })
      sub._publication(pub(4, 'F'))
      assert.deepEqual(offsets(seen), [4])
    })

    it('"recovered" to a fresh subscribe (no position asked) is taken as a fresh position', () => {
      const host = new Host()
      const sub = new Subscription('ch', host)
      const seen = watch(sub)
      sub._connected()
      host.last.reply(ok(5, { recovered: true, publications: replay(1, 5) }))
      assert.deepEqual(seen.subscribed, [{ channel: 'ch', recovered: false, wasRecovering: false, epoch: 'E', offset: 5 }])
      assert.deepEqual(offsets(seen), [])
    })

    it('"recovered" to the fresh subscribe after unrecoverable_position is still a failed recovery', () => {
      const { host, sub, seen } = live()
      reconnected(host, sub).reply(refused('unrecoverable_position'))
      host.last.reply(ok(12, { recovered: true, publications: replay(11, 12) }))
      assert.deepEqual(seen.subscribed.at(-1), { channel: 'ch', recovered: false, wasRecovering: true, epoch: 'E', offset: 12 })
      assert.deepEqual(offsets(seen), [])
    })

    it('a replay with a hole is a gap: what came before the hole is delivered, then it resubscribes from there', () => {
      const { host, sub, seen } = live()
      const resub = reconnected(host, sub)
      resub.reply(ok(14, { recovered: true, wasRecovering: true, publications: [...replay(11, 12), ...replay(14, 14)] }))
      assert.deepEqual(offsets(seen), [11, 12])
      assert.deepEqual(host.log.slice(-2), ['unsub', 'sub'])
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 12 })
    })

    it('a replay that stops short of the top resubscribes from where it stopped, even when it was empty', () => {
      const { host, sub } = live()
      const resub = reconnected(host, sub)
      resub.reply(ok(12, { recovered: true, wasRecovering: true }))
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 10 })
      assert.notEqual(host.last, resub)
    })

    it('a listener that unsubscribes during the replay stops it there', () => {
      const { host, sub, seen } = live()
      sub.on('publication', (p) => {
        if (p.offset === 12) sub.unsubscribe()
      })
      const resub = reconnected(host, sub)
      sub._publication(pub(15))
      resub.reply(ok(14, { recovered: true, wasRecovering: true, publications: replay(11, 14) }))
      assert.deepEqual(offsets(seen), [11, 12])
      assert.equal(sub.state, 'unsubscribed')
      assert.equal(seen.unsubscribed.length, 1)
      assert.equal(host.subscribes.length, 2, 'no resubscribe after the application left')
    })

    it('a listener that unsubscribes on the last replayed publication ends it there: no resubscribe', () => {
      const { host, sub, seen } = live()
      sub.on('publication', (p) => {
        if (p.offset === 14) sub.unsubscribe()
      })
      const resub = reconnected(host, sub)
      resub.reply(ok(20, { recovered: true, wasRecovering: true, publications: replay(11, 14) }))
      assert.deepEqual(offsets(seen), [11, 12, 13, 14])
      assert.equal(sub.state, 'unsubscribed')
      assert.equal(host.subscribes.length, 2)
      mock.timers.tick(10_000)
      assert.equal(host.subscribes.length, 2)
    })

    it('a listener that unsubscribes while held publications are delivered stops them there', () => {
      const { host, sub, seen } = live()
      sub.on('publication', (p) => {
        if (p.offset === 12) sub.unsubscribe()
      })
      const resub = reconnected(host, sub)
      for (const o of [11, 12, 13]) sub._publication(pub(o))
      resub.reply(ok(10, { recovered: true, wasRecovering: true }))
      assert.deepEqual(offsets(seen), [11, 12])
    })
  })

  describe('live gaps', () => {
    it('a publication of another epoch at the next offset is a gap, not a continuation', () => {
      const { host, sub, seen } = live()
      sub._publication(pub(11, 'F'))
      assert.deepEqual(offsets(seen), [])
      assert.deepEqual(host.log.slice(-2), ['unsub', 'sub'])
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 10 })
    })

    it('a gap while disconnected only waits: the next connect recovers', () => {
      const { host, sub, seen } = live()
      host.connected = false
      sub._publication(pub(12))
      assert.deepEqual(host.log, ['sub'])
      assert.equal(sub.state, 'subscribing')
      host.connected = true
      sub._connected()
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 10 })
      assert.deepEqual(offsets(seen), [])
    })

    it('the rest of a batch after a gap is not delivered', () => {
      const { host, sub, seen } = live()
      const resub = reconnected(host, sub)
      resub.reply(ok(13, { recovered: true, wasRecovering: true, publications: [...replay(11, 11), ...replay(13, 13)] }))
      sub._publication(pub(14)) // arrives while the new recovery is in flight: held, not delivered
      assert.deepEqual(offsets(seen), [11])
    })

    it('the publisher info reaches the application, and is absent when there was none', () => {
      const { sub, seen } = live()
      const info: ClientInfo = { client: 'c1', user: 'alice' }
      const events: unknown[] = []
      sub.on('publication', (p) => events.push(p))
      sub._publication(pub(11, 'E', info))
      sub._publication(pub(12))
      assert.deepEqual(events, [
        { channel: 'ch', epoch: 'E', offset: 11, data: 11, info },
        { channel: 'ch', epoch: 'E', offset: 12, data: 12 },
      ])
      assert.equal(Object.hasOwn(events[1] as object, 'info'), false)
      assert.deepEqual(seen.pubs, [
        { epoch: 'E', offset: 11, info },
        { epoch: 'E', offset: 12 },
      ])
    })

    it('after repeated gaps the retries back off with a growing attempt count, and reset once healthy', () => {
      const { host, sub, seen } = live()
      sub._publication(pub(20)) // gap 1: at once
      host.last.reply(ok(13, { recovered: true, wasRecovering: true })) // short: gap 2, backoff
      assert.deepEqual(host.delays.at(-1), { attempt: 2, advice: 'backoff' })
      assert.equal(host.log.at(-1), 'unsub', 'the server subscription is dropped while waiting')
      mock.timers.tick(1000)
      host.last.reply(ok(13, { recovered: true, wasRecovering: true })) // gap 3
      assert.deepEqual(host.delays.at(-1), { attempt: 3, advice: 'backoff' })
      mock.timers.tick(1000)
      host.last.reply(ok(13, { recovered: true, wasRecovering: true, publications: replay(11, 13) }))
      assert.deepEqual(offsets(seen), [11, 12, 13])
      sub._publication(pub(15)) // healthy again: a new gap resubscribes at once
      assert.equal(host.delays.length, 2)
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 13 })
    })

    it('a second gap in a row found as the connection drops sends nothing to the dead connection', () => {
      const { host, sub } = live()
      sub._publication(pub(20))
      const sent = host.log.length
      host.connected = false
      host.last.reply(ok(13, { recovered: true, wasRecovering: true }))
      assert.equal(host.log.length, sent, 'no unsubscribe without a connection')
      assert.equal(sub.state, 'subscribing')
    })

    it('a backoff wait while disconnected sends nothing; the connect that follows does', () => {
      const { host, sub } = live()
      sub._publication(pub(20))
      host.last.reply(ok(13, { recovered: true, wasRecovering: true }))
      const sent = host.subscribes.length
      host.connected = false
      mock.timers.tick(1000)
      assert.equal(host.subscribes.length, sent)
      host.connected = true
      sub._connected()
      assert.equal(host.subscribes.length, sent + 1)
    })

    it('a hot channel overflowing the held publications resubscribes from the position once the reply is in', () => {
      const { host, sub, seen } = live()
      const resub = reconnected(host, sub)
      for (let o = 11; o <= 10 + 10_001; o++) sub._publication(pub(o))
      resub.reply(ok(11, { recovered: true, wasRecovering: true, publications: replay(11, 11) }))
      assert.deepEqual(offsets(seen), [11], 'nothing of the dropped held publications')
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 11 })
      assert.notEqual(host.last, resub)
      // The next reply is not mistaken for another overflow.
      host.last.reply(ok(12, { recovered: true, wasRecovering: true, publications: replay(12, 12) }))
      sub._publication(pub(13))
      assert.deepEqual(offsets(seen), [11, 12, 13])
    })
  })

  describe('refusals', () => {
    it('already_subscribed: unsubscribe and subscribe again at once; a second one in a row backs off', () => {
      const host = new Host()
      const sub = new Subscription('ch', host)
      const seen = watch(sub)
      sub._connected()
      host.last.reply(refused('already_subscribed'))
      assert.deepEqual(host.log, ['sub', 'unsub', 'sub'])
      host.last.reply(refused('already_subscribed'))
      assert.deepEqual(host.log, ['sub', 'unsub', 'sub', 'unsub'])
      assert.deepEqual(host.delays, [{ attempt: 2, advice: 'backoff' }])
      mock.timers.tick(1000)
      assert.deepEqual(host.log.at(-1), 'sub')
      host.last.reply(ok(0))
      assert.equal(sub.state, 'subscribed')
      assert.deepEqual(seen.errors, ['already_subscribed', 'already_subscribed'])
    })

    it('a temporary refusal backs off with a growing attempt count; a permanent one ends the subscription', () => {
      const host = new Host()
      const sub = new Subscription('ch', host)
      const seen = watch(sub)
      sub._connected()
      host.last.reply(refused('engine_unavailable', true))
      mock.timers.tick(1000)
      host.last.reply(refused('engine_unavailable', true))
      assert.deepEqual(host.delays, [
        { attempt: 1, advice: 'backoff' },
        { attempt: 2, advice: 'backoff' },
      ])
      mock.timers.tick(1000)
      host.last.reply(refused('permission_denied'))
      assert.equal(sub.state, 'unsubscribed')
      assert.deepEqual(seen.unsubscribed, [
        { channel: 'ch', code: 1000, reason: 'subscription refused: permission_denied', error: seen.unsubscribed[0]?.error },
      ])
      assert.equal(seen.unsubscribed[0]?.error?.code, 'permission_denied')
      assert.equal(host.forgotten, 1)
      mock.timers.tick(10_000)
      assert.equal(host.subscribes.length, 3)
    })

    it('an error listener that unsubscribes on a permanent refusal ends it once', () => {
      const host = new Host()
      const sub = new Subscription('ch', host)
      const seen = watch(sub)
      sub.on('error', () => sub.unsubscribe())
      sub._connected()
      host.last.reply(refused('permission_denied'))
      assert.deepEqual(seen.unsubscribed, [{ channel: 'ch', code: 1000, reason: 'unsubscribed by the application' }])
      assert.equal(host.forgotten, 1)
    })

    it('an error listener that unsubscribes stops the retry', () => {
      const host = new Host()
      const sub = new Subscription('ch', host)
      sub.on('error', () => sub.unsubscribe())
      sub._connected()
      host.last.reply(refused('engine_unavailable', true))
      mock.timers.tick(10_000)
      assert.equal(host.subscribes.length, 1)
      assert.equal(sub.state, 'unsubscribed')
    })

    it('unrecoverable_position: subscribe fresh at once, and report the recovery as failed', () => {
      const { host, sub, seen } = live()
      const resub = reconnected(host, sub)
      resub.reply(refused('unrecoverable_position'))
      assert.equal(host.last.recover, undefined)
      host.last.reply(ok(50))
      assert.deepEqual(seen.subscribed.at(-1), { channel: 'ch', recovered: false, wasRecovering: true, epoch: 'E', offset: 50 })
      // The next drop recovers from the new position again.
      assert.deepEqual(reconnected(host, sub).recover, { epoch: 'E', offset: 50 })
    })
  })

  describe('the server changes the subscription', () => {
    function serverSide(): { host: Host; sub: Subscription; seen: Seen } {
      const host = new Host()
      const sub = new Subscription('ch', host, { epoch: 'E', offset: 5 })
      const seen = watch(sub)
      sub._announce()
      return { host, sub, seen }
    }

    it('a server-side subscription is announced once, live at its position', () => {
      const { host, sub, seen } = serverSide()
      assert.deepEqual(seen.subscribed, [{ channel: 'ch', recovered: false, wasRecovering: false, epoch: 'E', offset: 5 }])
      sub._publication(pub(6))
      assert.deepEqual(offsets(seen), [6])
      assert.deepEqual(host.log, [])
      // A subscription that is not live yet has nothing to announce.
      const pending = new Subscription('other', host)
      const quiet = watch(pending)
      pending._announce()
      assert.deepEqual(quiet.subscribed, [])
    })

    it('a subscribe push ahead of what was delivered (or in another epoch) catches up through a recovery; the same position changes nothing', () => {
      const { host, sub } = serverSide()
      sub._serverSubscribed({ type: 'subscribe', channel: 'ch', epoch: 'E', offset: 5 })
      assert.deepEqual(host.log, [])
      sub._serverSubscribed({ type: 'subscribe', channel: 'ch', epoch: 'E', offset: 8 })
      assert.deepEqual(host.log, ['unsub', 'sub'])
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 5 })
      // While that recovery is in flight, another push changes nothing.
      sub._serverSubscribed({ type: 'subscribe', channel: 'ch', epoch: 'F', offset: 1 })
      assert.equal(host.subscribes.length, 1)

      const other = serverSide()
      other.sub._serverSubscribed({ type: 'subscribe', channel: 'ch', epoch: 'F', offset: 1 })
      assert.deepEqual(other.host.last.recover, { epoch: 'E', offset: 5 })
    })

    it('an unsubscribe push: "none" and "stop" end it; "reconnect" comes back quickly and "backoff" slowly, with recovery', () => {
      for (const [code, advice] of [
        [4000, 'reconnect'],
        [4001, 'backoff'],
      ] as const) {
        const { host, sub, seen } = serverSide()
        sub._serverUnsubscribed({ type: 'unsubscribe', channel: 'ch', code, reason: 'x' })
        assert.deepEqual(host.delays, [{ attempt: 1, advice }])
        sub._publication(pub(6))
        mock.timers.tick(1000)
        assert.deepEqual(host.last.recover, { epoch: 'E', offset: 5 })
        assert.deepEqual(offsets(seen), [])
        assert.deepEqual(seen.unsubscribed, [])
      }
      for (const code of [1000, 4012]) {
        const { host, sub, seen } = serverSide()
        sub._serverUnsubscribed({ type: 'unsubscribe', channel: 'ch', code, reason: 'bye' })
        assert.deepEqual(seen.unsubscribed, [{ channel: 'ch', code, reason: 'bye' }])
        assert.equal(sub.state, 'unsubscribed')
        assert.equal(sub.position, undefined)
        sub._serverUnsubscribed({ type: 'unsubscribe', channel: 'ch', code, reason: 'again' })
        assert.equal(seen.unsubscribed.length, 1)
        assert.equal(host.forgotten, 1)
      }
    })

    it('an unsubscribe push while a subscribe is in flight voids its reply', () => {
      const { host, sub, seen } = live()
      const resub = reconnected(host, sub)
      sub._serverUnsubscribed({ type: 'unsubscribe', channel: 'ch', code: 4000, reason: 'moving' })
      resub.reply(ok(12, { recovered: true, wasRecovering: true, publications: replay(11, 12) }))
      assert.deepEqual(offsets(seen), [])
      assert.equal(sub.state, 'subscribing')
      mock.timers.tick(1000)
      assert.deepEqual(host.last.recover, { epoch: 'E', offset: 10 })
    })
  })

  describe('unsubscribe by the application', () => {
    it('tells the server only when the server holds (or is being asked for) the subscription and a connection is up', () => {
      const { host, sub, seen } = live()
      sub.unsubscribe()
      assert.deepEqual(host.log, ['sub', 'unsub'])
      assert.deepEqual(seen.unsubscribed, [{ channel: 'ch', code: 1000, reason: 'unsubscribed by the application' }])
      sub.unsubscribe()
      assert.deepEqual(host.log, ['sub', 'unsub'], 'twice is once')
      assert.equal(seen.unsubscribed.length, 1)

      const inFlight = new Host()
      const a = new Subscription('ch', inFlight)
      a._connected()
      a.unsubscribe()
      assert.deepEqual(inFlight.log, ['sub', 'unsub'])
      inFlight.last.reply(ok(3))
      assert.equal(a.state, 'unsubscribed', 'a late reply does not bring it back')

      const waiting = live()
      waiting.sub._disconnected()
      waiting.sub.unsubscribe()
      assert.deepEqual(waiting.host.log, ['sub'], 'nothing on the server after a drop')

      const offline = live()
      offline.host.connected = false
      offline.sub.unsubscribe()
      assert.deepEqual(offline.host.log, ['sub'])
    })

    it('a subscription not yet sent is subscribing, and ends without telling the server', () => {
      const host = new Host()
      const sub = new Subscription('ch', host)
      assert.equal(sub.state, 'subscribing')
      sub.unsubscribe()
      assert.deepEqual(host.log, [])
      assert.equal(sub.state, 'unsubscribed')
    })

    it('while waiting to come back after a server unsubscribe, ending it tells the server nothing', () => {
      const { host, sub } = live()
      sub._serverUnsubscribed({ type: 'unsubscribe', channel: 'ch', code: 4000, reason: 'moving' })
      sub.unsubscribe()
      assert.deepEqual(host.log, ['sub'])
      mock.timers.tick(10_000)
      assert.deepEqual(host.log, ['sub'])
    })

    it('forgets the position and cancels a pending retry', () => {
      const { host, sub } = live()
      sub._publication(pub(20))
      host.last.reply(ok(13, { recovered: true, wasRecovering: true }))
      const sent = host.subscribes.length
      sub.unsubscribe()
      mock.timers.tick(10_000)
      assert.equal(host.subscribes.length, sent)
      assert.equal(sub.position, undefined)
      sub._connected()
      assert.equal(host.subscribes.length, sent, 'an ended subscription never subscribes again')
      sub._disconnected()
      assert.equal(sub.state, 'unsubscribed')
    })

    it('the position is a copy', () => {
      const { sub } = live()
      const pos = sub.position
      assert.ok(pos)
      pos.offset = 99
      assert.deepEqual(sub.position, { epoch: 'E', offset: 10 })
      assert.equal(new Subscription('x', new Host()).position, undefined)
    })
  })
})
