import { CSRF_HEADER, CSRF_VALUE, type AdminErrorBody, type NodesResponse, type TokenResponse } from '../src/admin/feed.js'

/** A refused or failed `/admin/api` call, with the server's error code when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

function errorOf(body: unknown): AdminErrorBody['error'] | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const e = (body as { error?: unknown }).error
  if (typeof e !== 'object' || e === null) return undefined
  const { code, message } = e as { code?: unknown; message?: unknown }
  return typeof code === 'string' && typeof message === 'string' ? { code, message } : undefined
}

/**
 * One dashboard action. The session cookie goes along by itself (same origin); the custom header
 * is what the server checks against cross-site requests. A 401 means the session is over: back
 * to the login form rather than a page of errors.
 */
async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { [CSRF_HEADER]: CSRF_VALUE }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, credentials: 'same-origin', ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  const json: unknown = await res.json().catch(() => undefined)
  if (res.status === 401) {
    location.assign('/admin')
    throw new ApiError(401, 'unauthorized', 'the session has ended: log in again')
  }
  if (!res.ok) {
    const e = errorOf(json)
    throw new ApiError(res.status, e?.code ?? 'http', e?.message ?? `HTTP ${res.status}`)
  }
  return json as T
}

export interface PresenceResponse {
  channel: string
  clients: Array<{ client: string; user: string; info?: unknown }>
}

export const api = {
  token: () => call<TokenResponse>('POST', '/admin/api/token'),
  nodes: () => call<NodesResponse>('GET', '/admin/api/nodes'),
  presence: (channel: string) => call<PresenceResponse>('POST', '/admin/api/presence', { channel }),
  publish: (channel: string, data: unknown) => call<{ channel: string; offset: number; epoch: string }>('POST', '/admin/api/publish', { channel, data }),
  disconnect: (target: { user: string } | { client: string }) => call<{ ok: true }>('POST', '/admin/api/disconnect', target),
}
