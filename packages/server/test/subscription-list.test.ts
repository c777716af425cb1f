import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SubscriptionList } from '../src/subscription-list.js'

interface Rec {
  channel: string
  next: Rec | undefined
  n: number
}

const rec = (n: number): Rec => ({ channel: '', next: undefined, n })

describe('SubscriptionList', () => {
  it('files, finds and removes records by channel, in the order filed', () => {
    const list = new SubscriptionList<Rec>()
    assert.equal(list.size, 0)
    assert.equal(list.get('a'), undefined)
    const a = rec(1)
    const b = rec(2)
    const c = rec(3)
    list.set('a', a).set('b', b).set('c', c)
    assert.equal(list.size, 3)
    assert.equal(list.get('b'), b)
    assert.equal(b.channel, 'b')
    assert.ok(list.has('c'))
    assert.ok(!list.has('d'))
    assert.deepEqual([...list].map(([ch, r]) => [ch, r.n]), [['a', 1], ['b', 2], ['c', 3]])
    assert.ok(list.delete('b'))
    assert.ok(!list.delete('b'))
    assert.equal(list.size, 2)
    assert.deepEqual([...list].map(([ch]) => ch), ['a', 'c'])
    assert.ok(list.delete('c'))
    list.set('d', rec(4))
    assert.deepEqual([...list].map(([ch]) => ch), ['a', 'd'], 'the tail moved back when the last one went')
    assert.ok(list.delete('a'))
    assert.ok(list.delete('d'))
    assert.equal(list.size, 0)
    assert.deepEqual([...list], [])
    list.set('e', rec(5))
    assert.deepEqual([...list].map(([ch]) => ch), ['e'])
  })

  it('setting a channel again replaces its record', () => {
    const list = new SubscriptionList<Rec>()
    list.set('a', rec(1)).set('b', rec(2))
    const again = rec(3)
    list.set('a', again)
    assert.equal(list.size, 2)
    assert.equal(list.get('a'), again)
    assert.deepEqual([...list].map(([ch, r]) => [ch, r.n]), [['b', 2], ['a', 3]])
  })

  it('deleting while iterating visits every record still filed', () => {
    const list = new SubscriptionList<Rec>()
    for (let i = 0; i < 5; i++) list.set(`c${i}`, rec(i))
    const seen: string[] = []
    for (const [ch] of list) {
      seen.push(ch)
      list.delete(ch)
      if (ch === 'c1') list.delete('c2')
    }
    assert.deepEqual(seen, ['c0', 'c1', 'c3', 'c4'])
    assert.equal(list.size, 0)
  })

  it('stays a map past the size where it indexes, and after it shrinks back', () => {
    const list = new SubscriptionList<Rec>()
    const model = new Map<string, Rec>()
    for (let i = 0; i < 40; i++) {
      const r = rec(i)
      list.set(`ch${i}`, r)
      model.set(`ch${i}`, r)
    }
    for (let i = 0; i < 40; i += 3) {
      assert.equal(list.delete(`ch${i}`), model.delete(`ch${i}`))
    }
    assert.equal(list.size, model.size)
    for (let i = 0; i < 42; i++) assert.equal(list.get(`ch${i}`), model.get(`ch${i}`))
    assert.deepEqual([...list].map(([ch]) => ch), [...model.keys()])
    for (const ch of [...model.keys()]) {
      list.delete(ch)
      model.delete(ch)
      for (const k of ['ch1', 'ch38', 'ch39']) assert.equal(list.get(k), model.get(k))
      assert.equal(list.size, model.size)
    }
  })
})

describe('SubscriptionList as a ReadonlyMap', () => {
  it('keys, values, entries and forEach follow the order filed', () => {
    const list = new SubscriptionList<Rec>()
    list.set('a', rec(1)).set('b', rec(2))
    assert.deepEqual([...list.keys()], ['a', 'b'])
    assert.deepEqual([...list.values()].map((r) => r.n), [1, 2])
    assert.deepEqual([...list.entries()].map(([ch, r]) => [ch, r.n]), [['a', 1], ['b', 2]])
    const seen: string[] = []
    list.forEach((r, ch, l) => {
      assert.equal(l, list)
      seen.push(`${ch}${r.n}`)
    })
    assert.deepEqual(seen, ['a1', 'b2'])
  })
})
