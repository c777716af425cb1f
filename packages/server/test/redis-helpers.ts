/**
 * What the Redis engine tests share: a recording handler that also keeps the engine's state
 * changes and errors, an engine started for one test and closed after it, and bounded polls.
 */
import { after, type TestContext } from 'node:test'
import { HoldfastError } from '@holdfast/protocol'
import { RedisEngine, type RedisEngineOptions } from '../src/engine/redis-engine.js'
import { RecordingHandler } from './engine-contract.js'

/** Records state changes too, with their time, and lets a test wait for one. */
export class NodeHandler extends RecordingHandler {
  readonly states: { ready: boolean; at: number }[] = []
  readonly errors: unknown[] = []
  readonly #stateWaiters = new Set<() => void>()

  onStateChange(ready: boolean): void {
    this.states.push({ ready, at: performance.now() })
    for (const w of [...this.#stateWaiters]) w()
  }

  /** Resolves with the time of the first change to `ready` at or after `since`; rejects after `ms`. */
  untilState(ready: boolean, since: number, ms: number): Promise<number> {
    const find = (): number | undefined => this.states.find((s) => s.ready === ready && s.at >= since)?.at
    const now = find()
    if (now !== undefined) return Promise.resolve(now)
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const at = find()
        if (at === undefined) return
        clearTimeout(timer)
        this.#stateWaiters.delete(check)
        resolve(at)
      }
      const timer = setTimeout(() => {
        this.#stateWaiters.delete(check)
        reject(new Error(`timed out after ${ms} ms waiting for onStateChange(${ready})`))
      }, ms)
      this.#stateWaiters.add(check)
    })
  }
}

export async function startNode(t: TestContext, url: string, opts: RedisEngineOptions = {}): Promise<{ engine: RedisEngine; rec: NodeHandler }> {
  const rec = new NodeHandler()
  const engine = new RedisEngine({ url, onError: (err) => rec.errors.push(err), ...opts })
  t.after(() => engine.close())
  await engine.start(rec)
  return { engine, rec }
}

/** Poll `cond` every 10 ms; rejects after `ms`. For state that lives in Redis and sends no event. */
export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms
  for (;;) {
    if (await cond()) return
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export function isCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof HoldfastError && err.code === code
}


/** A clock the test moves by hand, for the engine's `now` option. */
export function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start
  return {
    now: () => t,
    advance: (ms) => {
      t += ms
    },
  }
}

/**
 * A server (or cluster) the tests of one file share: started on first use, closed after the
 * file's tests. Call at module level.
 */
export function sharedOnce<T extends { close(): Promise<unknown> }>(start: () => Promise<T>): () => Promise<T> {
  let shared: Promise<T> | undefined
  after(async () => {
    if (shared !== undefined) await (await shared).close()
  })
  return () => (shared ??= start())
}

/** Key prefixes, one per call: each test's keys and pub/sub channels stay apart on a shared server. */
export function prefixes(letter: string): () => string {
  let seq = 0
  return () => `${letter}${process.pid}-${seq++}`
}
