import type { UpgradeRequest } from '../transport/transport.js'

/** Who a connection is, as established by a token or an `authenticate` hook. */
export interface AuthResult {
  /** User id (`sub` claim); empty string for an anonymous user. */
  user: string
  /** When the credentials expire (ms since the epoch); the client must refresh before then. */
  expiresAt?: number
  /** Public info shown in presence and join/leave (`info` claim). */
  info?: unknown
  /** Channels the server subscribes the connection to at connect (`channels` claim). */
  channels?: string[]
}

export interface AuthContext {
  /** The token from the connect command, the `token` query parameter or `Authorization: Bearer`. */
  token: string | undefined
  /**
   * The HTTP upgrade request; absent for a token refresh on an open connection. With the `ws`
   * transport it is node:http's IncomingMessage (cast to reach its other fields); with `uws` it is
   * a plain object with only `headers`, `url`, `method` and `socket.remoteAddress`.
   */
  request?: UpgradeRequest
}

/** Custom authentication: resolve with the identity, or throw `HoldfastError('unauthorized' | 'token_expired')`. */
export type AuthenticateHook = (ctx: AuthContext) => Promise<AuthResult> | AuthResult

export interface JwtAuthOptions {
  /** Shared secret for HS256/HS384/HS512. */
  secret?: string | Uint8Array
  /** PEM-encoded SPKI public key for RS*, PS*, ES* or EdDSA. */
  publicKey?: string
  /** URL of a JWKS document (keys chosen by `kid`, cached, refetched on unknown `kid`). */
  jwksUrl?: string
  /** Accepted `alg` values. @default the family of the configured key ("none" is never accepted) */
  algorithms?: string[]
  /** Required `aud`. */
  audience?: string | string[]
  /** Required `iss`. */
  issuer?: string | string[]
  /** Clock skew tolerated on `exp`/`nbf`, in seconds. @default 5 */
  clockToleranceSec?: number
  /**
   * Refuse tokens without an `exp` claim (a token that never expires cannot be revoked by time).
   * Set false only for tokens that are revoked some other way. @default true
   */
  requireExp?: boolean
}
