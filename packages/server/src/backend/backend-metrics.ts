import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { PROXY_EVENTS, WEBHOOK_EVENTS } from './options.js'

/** Why a backend call failed (the `kind` label): every one reaches the client as `backend_unavailable`. */
export const FAILURE_KINDS = ['connect', 'timeout', 'status', 'invalid', 'open'] as const
export type FailureKind = (typeof FAILURE_KINDS)[number]

/** How a backend call ended (the `outcome` label). */
export const CALL_OUTCOMES = ['result', 'error', 'disconnect', 'failed'] as const
export type CallOutcome = (typeof CALL_OUTCOMES)[number]

/**
 * The backend proxy's and the webhooks' metrics, in the gateway's registry. Registered by every
 * gateway, proxy or not, so that dashboards and alerts find them from the start (zeros).
 */
export class BackendMetrics {
  readonly calls: Counter<'event' | 'outcome'>
  readonly errors: Counter<'event' | 'kind'>
  readonly duration: Histogram<'event'>
  readonly breakerOpen: Gauge<'backend'>
  readonly webhooks: Counter<'event' | 'outcome'>
  readonly webhookAttempts: Counter<'outcome'>
  readonly webhookQueue: Gauge
  /** Set by the webhook queue: its length at scrape time. */
  queueLength: () => number = () => 0

  constructor(registry: Registry) {
    const registers = [registry]
    this.calls = new Counter({ name: 'holdfast_proxy_calls_total', help: 'Backend proxy calls by event and outcome (result, error, disconnect, failed).', labelNames: ['event', 'outcome'], registers })
    this.errors = new Counter({ name: 'holdfast_proxy_errors_total', help: 'Failed backend proxy calls by event and kind (connect, timeout, status, invalid, open breaker).', labelNames: ['event', 'kind'], registers })
    this.duration = new Histogram({
      name: 'holdfast_proxy_duration_seconds',
      help: 'Backend proxy call latency by event, failures included.',
      labelNames: ['event'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    })
    this.breakerOpen = new Gauge({ name: 'holdfast_proxy_breaker_open', help: 'Whether the circuit breaker of a backend origin is open (1) or not (0).', labelNames: ['backend'], registers })
    this.webhooks = new Counter({
      name: 'holdfast_webhook_events_total',
      help: 'Webhook events by event and outcome: delivered, dropped_full (queue full), dropped_attempts (every attempt failed).',
      labelNames: ['event', 'outcome'],
      registers,
    })
    this.webhookAttempts = new Counter({ name: 'holdfast_webhook_attempts_total', help: 'Webhook delivery attempts by outcome (ok, failed).', labelNames: ['outcome'], registers })
    const self = this
    this.webhookQueue = new Gauge({
      name: 'holdfast_webhook_queue',
      help: 'Webhook events waiting for delivery or in flight.',
      registers,
      collect() {
        this.set(self.queueLength())
      },
    })
    for (const event of PROXY_EVENTS) {
      for (const outcome of CALL_OUTCOMES) this.calls.inc({ event, outcome }, 0)
      for (const kind of FAILURE_KINDS) this.errors.inc({ event, kind }, 0)
    }
    for (const event of WEBHOOK_EVENTS) for (const outcome of ['delivered', 'dropped_full', 'dropped_attempts']) this.webhooks.inc({ event, outcome }, 0)
    for (const outcome of ['ok', 'failed']) this.webhookAttempts.inc({ outcome }, 0)
  }
}
