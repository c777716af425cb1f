import { HoldfastError } from '@holdfast/protocol'

/** Redis replies that mean "not now" rather than "wrong": they count against the breaker. */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|MISCONF|OOM|MOVED|ASK)\b/

/**
 * True for errors that say the backend cannot serve right now: connection-level errors of
 * ioredis (closed, not writable, timed out, too many retries), the breaker's own rejections, and
 * the Redis replies above. A script or argument error is a bug, not an outage.
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof HoldfastError) return err.code === 'engine_unavailable'
  if (!(err instanceof Error)) return false
  if (err.name === 'ReplyError') return UNAVAILABLE_REPLY.test(err.message)
  return true
}

/** No answer within the command timeout (ioredis's, or the breaker's own). */
export function isTimeout(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  return (err as Error & { code?: unknown }).code === 'ETIMEDOUT' || err.message === 'Command timed out'
}

export function toEngineError(what: string, err: unknown): HoldfastError {
  if (err instanceof HoldfastError) return err
  const message = err instanceof Error ? err.message : String(err)
  if (isUnavailable(err)) return new HoldfastError('engine_unavailable', `redis ${what}: ${message}`, { cause: err })
  return new HoldfastError('internal', `redis ${what}: ${message}`, { cause: err })
}

/** A configuration the engine cannot work with (wrong master name, not a cluster...): startup fails with it. */
export class RedisConfigError extends TypeError {
  override readonly name = 'RedisConfigError'
}
