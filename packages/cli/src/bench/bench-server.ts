import { once } from 'node:events'
import type { ChildProcess } from 'node:child_process'
import { forkSibling, killChild } from './child.js'
import type { FromServer } from './servers/server-process.js'
import type { ServerKind } from './types.js'

/** A server the bench started in its own process. */
export interface BenchServer {
  kind: ServerKind
  url: string
  pid: number
  /** Force a full GC in the server, so memory readings do not depend on when it last ran. */
  gc(): Promise<void>
  stop(): Promise<void>
}

const START_TIMEOUT_MS = 30_000

export async function startBenchServer(kind: ServerKind): Promise<BenchServer> {
  const child: ChildProcess = forkSibling('servers/server-process', {
    env: { ...process.env, HOLDFAST_BENCH_SERVER: kind },
    // HOLDFAST_BENCH_SERVER_ARGS: extra node flags for the server process, e.g. to profile it:
    // HOLDFAST_BENCH_SERVER_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench -- --servers holdfast
    execArgv: ['--expose-gc', ...(process.env['HOLDFAST_BENCH_SERVER_ARGS']?.split(' ').filter(Boolean) ?? [])],
  })
  const first = await new Promise<FromServer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${kind} server did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)
    child.once('message', (m: FromServer) => {
      clearTimeout(timer)
      resolve(m)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the ${kind} server exited (code ${code}) before listening`))
    })
  }).catch(async (err: unknown) => {
    await killChild(child)
    throw err
  })
  if (first.type !== 'listening') {
    await killChild(child)
    throw new Error(`the ${kind} server failed to start: ${first.type === 'error' ? first.message : first.type}`)
  }
  child.removeAllListeners('exit')
  return {
    kind,
    url: first.url,
    pid: child.pid as number,
    gc: async () => {
      if (child.exitCode !== null) return
      child.send({ type: 'gc' })
      const wait = once(child, 'message')
      const timeout = new Promise((r) => setTimeout(r, 10_000).unref())
      await Promise.race([wait, timeout])
    },
    stop: () => killChild(child),
  }
}
