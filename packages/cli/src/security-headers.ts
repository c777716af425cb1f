import type { FastifyHelmetOptions } from '@fastify/helmet'

/**
 * The Content-Security-Policy of every page `holdfast serve` sends (the demo at `/`, the dashboard
 * at `/admin`): scripts and styles from this origin only, no inline code, no framing, forms
 * posting only here; the pages' WebSocket goes to this origin ('self' covers ws: and wss: on the
 * same host and port).
 */
export const CSP_DIRECTIVES = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
} as const

/**
 * @fastify/helmet's defaults with our CSP and no framing at all. HSTS is off: it belongs to
 * whatever terminates TLS in front of the gateway, and sent from here with `includeSubDomains` it
 * would bind every sibling host of the domain to HTTPS for a year.
 */
export const HELMET_OPTIONS: FastifyHelmetOptions = {
  global: true,
  contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
  strictTransportSecurity: false,
  xFrameOptions: { action: 'deny' },
}
