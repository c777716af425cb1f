import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { EngineHost, MemoryEngine, type IpcPort } from '@holdfast/server/internal'
import type { Logger } from 'pino'
import { createLogger, warnLoudly } from '../logger.js'
import { processStartTicks, removeStatus, writeStatus, type PrimaryStatus, type ReloadOutcome } from './status-file.js'
import type { ServeConfig } from '../config.js'
import { isWorkerReady, WORKER_ENV, WORKER_SESSION_SECRET_ENV, WORKER_WS_PORT_ENV, type WorkerDrain, type WorkerReady } from './messages.js'

/** A new worker that is not ready in this time counts as failed (a reload then aborts). */
const READY_TIMEOUT_MS = 30_000
/** The gateway's default drain window (a worker that reported none uses it). */
const DEFAULT_DRAIN_MS = 10_000
/** Past drainMs, how long a retiring worker may take to exit before it is killed. */
const EXIT_GRACE_MS = 15_000
/** Crash-loop guard: more than this many unplanned exits within the window slow down the respawns. */
const CRASH_LIMIT = 5
const CRASH_WINDOW_MS = 10_000

interface Managed {
  worker: Worker
  /** The worker's IPC as the engine host sees it. */
  port: IpcPort
  id: number
  /** We asked it to go (reload, shutdown): its exit is not a crash. */
  retiring: boolean
  /**
   * Started by a reload and not ready yet: if it exits now, the new code or config is broken and
   * the reload aborts. Respawning it would only crash-loop on the same config (and, once the
   * config is fixed, leave one worker too many), so its exit is not a crash either.
   */
  onTrial: boolean
  /** Its drain window, as it reported when ready; undefined: the default. */
  drainMs: number | undefined
  ready: Promise<WorkerReady>
}

/**
 * `holdfast serve --workers N`: a primary that runs N gateway workers on one port (node:cluster
 * shares the listening socket), replaces a worker that dies, and on SIGHUP replaces them one at a
 * time — the new one ready before the old one drains — so clients only ever see orderly
 * `restart` closes and reconnect to a live worker. Without Redis the workers share one engine
 * hosted here (EngineHost over IPC), so a client recovers whichever worker it lands on.
 */
export async function runPrimary(config: ServeConfig, io: { stdout: NodeJS.WritableStream } = { stdout: process.stdout }): Promise<void> {
  const log: Logger = await createLogger(config, { service: 'holdfast', role: 'primary' })
  const noAuth = config.warnings.find((w) => w.startsWith('NO AUTHENTICATION'))
  if (noAuth !== undefined) warnLoudly(log, noAuth)
  const host = config.engine === 'memory' ? new EngineHost(new MemoryEngine()) : undefined
  await host?.start()
  cluster.setupPrimary({ serialization: 'advanced' })
  const workers = new Set<Managed>()
  let nextId = 1
  let stopping = false
  let reloading: Promise<void> | undefined
  let reloadAgain = false
  const crashes: number[] = []
  // Workers of one primary are one node to a client: a session issued by one must resume on any
  // other (after a crash or a reload). Without a configured secret each worker would draw its own,
  // so the primary draws one for all of them; a configured one still wins (see serve.ts).
  const sessionSecret = randomBytes(32).toString('base64url')

  const fork = (onTrial = false): Managed => {
    const id = nextId++
    const worker = cluster.fork({
      [WORKER_ENV]: String(id),
      [WORKER_SESSION_SECRET_ENV]: sessionSecret,
      ...(config.transport === 'uws' ? { [WORKER_WS_PORT_ENV]: String(config.wsPort) } : {}),
    })
    const pid = worker.process.pid
    const port: IpcPort = {
      send: (m) => worker.send(m as never),
      on: (_e, l) => worker.on('message', l),
      off: (_e, l) => worker.off('message', l),
      get connected() {
        return worker.isConnected()
      },
    }
    host?.attach(port)
    // The engine host writes to every worker (fan-out, control messages such as session
    // takeovers), and a worker that is exiting can still look connected: the write then fails
    // with EPIPE, emitted as an 'error' on the Worker. Unhandled, that event would bring the
    // primary — and every other worker with it — down in the middle of a reload. What that worker
    // misses no longer matters: its clients are reconnecting elsewhere.
    worker.on('error', (err: NodeJS.ErrnoException) => log.debug({ worker: id, pid, err: err.code ?? err.message }, 'IPC write to a worker failed'))
    // Stop routing to it as soon as its channel is gone, not only once the exit is reaped.
    worker.once('disconnect', () => host?.detach(port))
    const managed: Managed = {
      worker,
      port,
      id,
      retiring: false,
      onTrial,
      drainMs: undefined,
      ready: new Promise<WorkerReady>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker ${id} was not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
        worker.on('message', (m: unknown) => {
          if (isWorkerReady(m)) {
            clearTimeout(timer)
            managed.onTrial = false
            managed.drainMs = m.drainMs
            log.info({ worker: id, pid }, 'worker ready')
            resolve(m)
          }
        })
        worker.once('exit', (code, signal) => {
          clearTimeout(timer)
          reject(new Error(`worker ${id} exited before it was ready (code ${code}, signal ${signal})`))
        })
      }),
    }
    managed.ready.catch(() => {})
    worker.once('exit', (code, signal) => {
      workers.delete(managed)
      host?.detach(port)
      if (managed.retiring || stopping) {
        log.info({ worker: id, pid, code, signal }, 'worker exited')
        return
      }
      if (managed.onTrial) {
        // The reload that started it reports the failure and keeps the old workers.
        log.error({ worker: id, pid, code, signal }, 'new worker exited before it was ready')
        return
      }
      // An unplanned exit: say why, and replace it at once (unless it keeps crashing).
      log.error({ worker: id, pid, code, signal }, 'worker died; starting a replacement')
      const now = Date.now()
      crashes.push(now)
      while (crashes.length > 0 && (crashes[0] as number) < now - CRASH_WINDOW_MS) crashes.shift()
      const delay = crashes.length > CRASH_LIMIT ? 1000 : 0
      setTimeout(() => {
        if (!stopping) workers.add(fork())
      }, delay)
    })
    return managed
  }

  const retire = async (m: Managed): Promise<void> => {
    m.retiring = true
    const exited = new Promise<void>((resolve) => (m.worker.isDead() ? resolve() : m.worker.once('exit', () => resolve())))
    const drain: WorkerDrain = { hf: 'worker-drain' }
    if (m.worker.isConnected()) m.worker.send(drain as never)
    // The worker drains over the window of the config it started with, not the primary's.
    const deadline = setTimeout(() => {
      log.warn({ worker: m.id }, 'worker did not exit after its drain; killing it')
      m.worker.process.kill('SIGKILL')
    }, (m.drainMs ?? config.drainMs ?? DEFAULT_DRAIN_MS) + EXIT_GRACE_MS)
    await exited
    clearTimeout(deadline)
  }

  // `holdfast reload` reads this to know the pid is ours and how each reload went.
  const status: PrimaryStatus = { holdfast: 'primary', pid: process.pid, startTicks: processStartTicks(process.pid), workers: config.workers, reloading: false, reloads: 0, last: null }
  const publishStatus = (): void => {
    if (config.pidFile === undefined) return
    try {
      writeStatus(config.pidFile, status)
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot write the status file beside the pid file')
    }
  }

  /** Replace every worker that exists now, one at a time; abort (keeping the old ones) if a new one fails. */
  const reload = async (): Promise<void> => {
    const old = [...workers]
    const started = performance.now()
    let replaced = 0
    const end = (outcome: Omit<ReloadOutcome, 'ms' | 'replaced'>): void => {
      status.reloading = false
      status.reloads++
      status.last = { ...outcome, replaced, ms: Math.round(performance.now() - started) }
      publishStatus()
    }
    status.reloading = true
    publishStatus()
    log.info({ workers: old.length }, 'rolling reload started')
    for (const m of old) {
      if (stopping) return end({ result: 'aborted', reason: 'the primary is shutting down' })
      if (!workers.has(m)) continue
      const fresh = fork(true)
      try {
        await fresh.ready
      } catch (err) {
        log.error({ err: (err as Error).message }, 'rolling reload aborted: a new worker failed to start; the old workers keep serving')
        fresh.retiring = true
        if (!fresh.worker.isDead()) fresh.worker.process.kill('SIGKILL')
        return end({ result: 'aborted', reason: `a new worker failed to start (${(err as Error).message}); the old workers keep serving` })
      }
      workers.add(fresh)
      await retire(m)
      replaced++
    }
    log.info('rolling reload finished')
    end({ result: 'finished' })
  }

  const startReload = (): void => {
    if (stopping) return
    if (reloading !== undefined) {
      // A reload asked for during a reload (new code deployed twice): run once more afterwards.
      reloadAgain = true
      return
    }
    reloading = reload().finally(() => {
      reloading = undefined
      if (reloadAgain) {
        reloadAgain = false
        startReload()
      }
    })
  }

  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`holdfast: ${signal} again, exiting without waiting for the drain\n`)
      process.exit(signal === 'SIGINT' ? 130 : 143)
    }
    stopping = true
    log.info({ signal }, 'signal received, draining workers')
    void Promise.all([...workers].map((m) => retire(m))).then(async () => {
      await host?.close().catch(() => {})
      if (config.pidFile !== undefined) {
        rmSync(config.pidFile, { force: true })
        removeStatus(config.pidFile)
      }
      log.info('stopped')
      process.exit(0)
    })
  }

  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
  process.on('SIGHUP', startReload)
  if (config.pidFile !== undefined) {
    writeFileSync(config.pidFile, `${process.pid}\n`)
    publishStatus()
  }

  const initial = Array.from({ length: config.workers }, () => fork())
  for (const m of initial) workers.add(m)
  let first: WorkerReady
  try {
    first = (await Promise.all(initial.map((m) => m.ready)))[0] as WorkerReady
  } catch (err) {
    stopping = true
    for (const m of initial) if (!m.worker.isDead()) m.worker.process.kill('SIGKILL')
    throw err
  }
  const url = first.url
  const ws = first.wsUrl ?? `${url.replace(/^http/, 'ws')}/ws`
  io.stdout.write(`holdfast listening on ${url} (${ws}) engine=${config.engine} workers=${config.workers}${config.transport === 'uws' ? ' transport=uws' : ''}\n`)
  log.info({ url, workers: config.workers, pid: process.pid }, 'holdfast primary started')
}
