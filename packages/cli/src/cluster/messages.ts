/** Messages between the `serve --workers N` primary and its workers (besides the engine's own IPC). */

/** Worker → primary: the HTTP server listens and the gateway is ready. */
export interface WorkerReady {
  hf: 'worker-ready'
  url: string
  /** Where its WebSockets are (with uws, a port of their own). */
  wsUrl?: string
  /**
   * The drain window this worker will use (from the config it read at startup, which a reload may
   * have changed since the primary started), so that the primary waits for it before killing.
   */
  drainMs?: number
}

/** Primary → worker: stop taking connections, drain over the worker's own drain window, exit 0. */
export interface WorkerDrain {
  hf: 'worker-drain'
}

export function isWorkerReady(m: unknown): m is WorkerReady {
  return typeof m === 'object' && m !== null && (m as { hf?: unknown }).hf === 'worker-ready'
}

export function isWorkerDrain(m: unknown): m is WorkerDrain {
  return typeof m === 'object' && m !== null && (m as { hf?: unknown }).hf === 'worker-drain'
}

/** Set by the primary in each worker's environment: the worker's ordinal (1, 2, ...). */
export const WORKER_ENV = 'HOLDFAST_WORKER_ID'

/**
 * Set by the primary in each worker's environment: a session secret shared by its workers, used
 * when none is configured, so that a session resumes on any worker (and across reloads).
 */
export const WORKER_SESSION_SECRET_ENV = 'HOLDFAST_WORKER_SESSION_SECRET'

/**
 * Set by the primary in each worker's environment with `--transport uws`: the WebSocket port every
 * worker listens on (SO_REUSEPORT). It wins over the worker's own `--ws-port`, which may say 0.
 */
export const WORKER_WS_PORT_ENV = 'HOLDFAST_WORKER_WS_PORT'
