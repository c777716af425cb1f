// What the dashboard page and the server agree on. Types and plain constants only, with no Node
// import: the page's bundle (packages/cli/admin) imports this file too.

/**
 * Namespace of the dashboard's channels. `$` is outside the namespace names a config file may
 * configure (options.ts allows `[A-Za-z0-9_.-]`), so no deployment can loosen its rules; the
 * gateway hooks installed by AdminDashboard let only the admin user subscribe and nobody publish.
 */
export const ADMIN_NAMESPACE = '$admin'

/** Header every `/admin/api` call must carry: a cross-site form or image cannot set it (CSRF). */
export const CSRF_HEADER = 'x-holdfast-admin'
export const CSRF_VALUE = '1'

/** Most channels one stats message lists (the busiest); the rest are only counted. */
export const MAX_LISTED_CHANNELS = 50

/** One node's numbers, published every second on the stats channel by that node. */
export interface NodeStats {
  /** Format version, bumped on incompatible changes. */
  v: 1
  node: string
  /** When the numbers were taken (ms since the epoch, the node's clock). */
  at: number
  /** Milliseconds the rates below were measured over (about the publishing period). */
  periodMs: number
  connections: number
  subscriptions: number
  /** Channels with subscribers on this node. */
  channels: number
  messagesInPerSec: number
  messagesOutPerSec: number
  bytesInPerSec: number
  bytesOutPerSec: number
  ready: boolean
  draining: boolean
  startedAt: number
  /** The busiest channels of this node: [name, local subscribers], at most MAX_LISTED_CHANNELS. */
  top: Array<[channel: string, subscribers: number]>
}

/** `POST /admin/api/token`: how the page joins the feed. */
export interface TokenResponse {
  token: string
  /** The stats channel, limited to the admin user (`$admin:stats#<admin user>`). */
  channel: string
  /** WebSocket path of this server (`/ws`). */
  wsPath: string
  /** The token's lifetime; the client SDK refreshes it through `getToken` before it runs out. */
  expiresInMs: number
}

/** `GET /admin/api/nodes`: the fleet as the engine's node registry sees it. */
export interface NodesResponse {
  /** The node that answered. */
  self: string
  nodes: Array<{ id: string; connections: number; subscriptions: number; channels: number; startedAt: number; updatedAt: number }>
}

/** Error body of every `/admin` JSON endpoint, like the server API's. */
export interface AdminErrorBody {
  error: { code: string; message: string }
}
