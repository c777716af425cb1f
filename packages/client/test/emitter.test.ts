import assert from 'node:assert/strict'
import { mock, test } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { TypedEmitter } from '../src/emitter.js'

interface Events {
  tick: number
  error: HoldfastError
}

class Emitter extends TypedEmitter<Events> {
  fire<K extends keyof Events>(event: K, payload: Events[K]): void {
    this.emit(event, payload)
  }
}

test('on/off/once', () => {
  const e = new Emitter()
  const seen: number[] = []
  const off = e.on('tick', (n) => seen.push(n))
  e.once('tick', (n) => seen.push(n * 10))
  e.fire('tick', 1)
  e.fire('tick', 2)
  off()
  e.fire('tick', 3)
  assert.deepEqual(seen, [1, 10, 2])
  assert.equal(e.listenerCount('tick'), 0)
})

test('a throwing listener is reported on "error" and the other listeners still run', () => {
  const e = new Emitter()
  const seen: string[] = []
  const errors: HoldfastError[] = []
  e.on('error', (err) => errors.push(err))
  e.on('tick', () => {
    throw new Error('boom')
  })
  e.on('tick', (n) => seen.push(`second ${n}`))
  assert.doesNotThrow(() => e.fire('tick', 7))
  assert.deepEqual(seen, ['second 7'])
  assert.equal(errors.length, 1)
  assert.equal(errors[0]?.code, 'internal')
  assert.match(errors[0]?.message ?? '', /"tick" listener threw: boom/)
  assert.equal((errors[0]?.cause as Error).message, 'boom')
})

test('a throwing error listener, or no error listener, goes to the console, never up the stack', (t) => {
  const logged = mock.method(console, 'error', () => {})
  t.after(() => logged.mock.restore())
  const e = new Emitter()
  e.on('tick', () => {
    throw new Error('no error listener')
  })
  assert.doesNotThrow(() => e.fire('tick', 1))
  e.on('error', () => {
    throw new Error('error listener broken')
  })
  assert.doesNotThrow(() => e.fire('tick', 2))
  assert.equal(logged.mock.callCount(), 2)
  const e2 = new Emitter()
  assert.doesNotThrow(() => e2.fire('error', new HoldfastError('internal', 'nobody listens')))
  assert.equal(logged.mock.callCount(), 3)
})

test('listeners added or removed during an emit do not disturb that round', () => {
  const e = new Emitter()
  const seen: string[] = []
  const offB = e.on('tick', () => {
    seen.push('a')
    offB2()
    e.on('tick', () => seen.push('late'))
  })
  const offB2 = e.on('tick', () => seen.push('b'))
  e.fire('tick', 1)
  assert.deepEqual(seen, ['a', 'b'])
  offB()
})
