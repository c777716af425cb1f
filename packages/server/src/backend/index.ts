// `@holdfast/server/backend`: what an application next to a holdfast node uses from Node — the
// webhook signature check and the shapes of the proxy and webhook options (docs/proxy.md).
export { WebhookHeaders, signWebhook, verifyWebhook } from './signature.js'
export { PROXY_EVENTS, WEBHOOK_EVENTS, type ProxyEvent, type ProxyEventOptions, type ProxyOptions, type WebhookEvent, type WebhookOptions, type BreakerOptions } from './options.js'
