/** Messages between the `serve --workers N` primary and its workers (besides the engine's own IPC). */

/** Worker → primary: the HTTP server listens and the gateway is ready. */
export interface WorkerReady {
  hf: 'worker-ready'
  url: string
}

/** Primary → worker: stop taking connections, drain, exit 0. */
export interface WorkerDrain {
  hf: 'worker-drain'
  drainMs?: number
}

export function isWorkerReady(m: unknown): m is WorkerReady {
  return typeof m === 'object' && m !== null && (m as { hf?: unknown }).hf === 'worker-ready'
}

export function isWorkerDrain(m: unknown): m is WorkerDrain {
  return typeof m === 'object' && m !== null && (m as { hf?: unknown }).hf === 'worker-drain'
}

/** Set by the primary in each worker's environment: the worker's ordinal (1, 2, ...). */
export const WORKER_ENV = 'HOLDFAST_WORKER_ID'
