import { createHmac, timingSafeEqual } from 'node:crypto'

/** Request headers of a webhook delivery (docs/proxy.md). */
export const WebhookHeaders = {
  /** The event's id: the same on every retry, for deduplication. */
  id: 'x-holdfast-id',
  event: 'x-holdfast-event',
  /** Unix seconds when this attempt was signed. */
  timestamp: 'x-holdfast-timestamp',
  /** `v1=<hex HMAC-SHA256 of "<timestamp>.<body>" with the webhook secret>`. */
  signature: 'x-holdfast-signature',
} as const

/** The signature header value of `body` sent at `timestamp` (unix seconds). */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

/**
 * Check a webhook delivery: the signature matches the raw body and the timestamp is within
 * `toleranceSec` of now (a replayed old delivery fails). Compare in constant time.
 */
export function verifyWebhook(secret: string, headers: { timestamp: string | undefined; signature: string | undefined }, body: string, opts: { toleranceSec?: number; now?: number } = {}): boolean {
  const ts = Number(headers.timestamp)
  if (!Number.isSafeInteger(ts) || headers.signature === undefined) return false
  const now = opts.now ?? Math.floor(Date.now() / 1000)
  if (Math.abs(now - ts) > (opts.toleranceSec ?? 300)) return false
  const want = Buffer.from(signWebhook(secret, ts, body))
  const got = Buffer.from(headers.signature)
  return got.length === want.length && timingSafeEqual(got, want)
}
