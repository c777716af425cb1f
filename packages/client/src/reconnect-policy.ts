import { adviceFor, closeCodes } from '@holdfast/protocol/internal'
import { backoffDelay } from './backoff.js'

export interface ReconnectInput {
  /** Close code of the connection (or attempt) that just ended. */
  code: number
  /** Consecutive reconnect attempts so far, without a connection that stayed up. */
  attempt: number
  /** Consecutive unauthorized / token-expired closes so far. */
  authFailures: number
  /** A `getToken` option exists. */
  canRefresh: boolean
  /** The connection never got past connecting (a failed attempt). */
  wasConnecting: boolean
  maxAttempts: number
  minDelayMs: number
  maxDelayMs: number
  restartJitterMs: number
  random?: () => number
}

export type ReconnectDecision =
  | { action: 'stop'; why: string | undefined }
  | {
      action: 'retry'
      /** Counters after this close. */
      attempt: number
      authFailures: number
      delayMs: number
      /** Ask `getToken()` before the next attempt. */
      refreshToken: boolean
      /** Move to the next URL. */
      rotate: boolean
    }

/**
 * What to do after a connection ends, from its close code's advice (the protocol's one table):
 * none/stop end the client; refresh gets a new token (twice in a row means the token source is
 * broken: stop); reconnect comes back quickly, jittered, unless this is already a repeat; backoff
 * waits the capped full-jitter delay. Past `maxAttempts` the client gives up.
 */
export function decideReconnect(input: ReconnectInput): ReconnectDecision {
  const random = input.random ?? Math.random
  const advice = adviceFor(input.code)
  if (advice === 'none' || advice === 'stop') return { action: 'stop', why: undefined }
  let authFailures = input.authFailures
  if (advice === 'refresh') {
    if (!input.canRefresh) return { action: 'stop', why: 'no getToken to refresh the token' }
    authFailures++
    if (authFailures >= 2) return { action: 'stop', why: 'unauthorized twice in a row' }
  }
  const attempt = input.attempt + 1
  if (attempt > input.maxAttempts) return { action: 'stop', why: `gave up after ${input.maxAttempts} reconnect attempts` }
  // A node that said "restart" (or a token that just needed refreshing) is no reason to wait, the
  // first time; a repeat is, or a fleet of clients would spin against a server that keeps refusing.
  const quick = (advice === 'reconnect' || advice === 'refresh') && attempt === 1
  const delayMs = quick ? random() * input.restartJitterMs : backoffDelay(attempt, input.minDelayMs, input.maxDelayMs, random)
  return {
    action: 'retry',
    attempt,
    authFailures,
    delayMs,
    refreshToken: advice === 'refresh',
    // A failed attempt, a node telling us to go elsewhere, or a node gone silent (a frozen or
    // partitioned node would cost a whole connect timeout before the next endpoint): try the next.
    rotate: input.wasConnecting || advice === 'reconnect' || input.code === closeCodes.heartbeat_timeout.code,
  }
}
