import { ErrorCodes, HoldfastError, type ErrorCodeName } from '@holdfast/protocol'

/**
 * The HTTP status of every error code. `satisfies` the whole table on purpose: a code added to
 * the protocol fails the typecheck here until someone decides what the API answers with.
 * Client-side codes (timeout, queue_full, client_closed, storage_failed, dropped) never come from the gateway; they are
 * mapped only so that the table is total.
 */
export const HTTP_STATUS = {
  internal: 500,
  unauthorized: 401,
  unknown_channel: 400,
  permission_denied: 403,
  method_not_found: 404,
  already_subscribed: 409,
  limit_exceeded: 429,
  bad_request: 400,
  // The feature is switched off for the namespace: the request is understood but not allowed.
  not_available: 403,
  token_expired: 401,
  rate_limited: 429,
  payload_too_large: 413,
  engine_unavailable: 503,
  not_subscribed: 409,
  in_progress: 409,
  unrecoverable_position: 409,
  timeout: 504,
  queue_full: 503,
  client_closed: 500,
  storage_failed: 500,
  dropped: 500,
  backend_unavailable: 503,
} as const satisfies Record<ErrorCodeName, number>

/** The body of every error response. */
export interface ApiErrorBody {
  error: { code: ErrorCodeName; message: string }
}

export interface ApiErrorResponse {
  status: number
  body: ApiErrorBody
  /** Set for temporary failures: when a retry makes sense, in seconds. */
  retryAfter?: number
}

/** One ajv error as Fastify hands it over (`err.validation`). */
export interface ValidationIssue {
  keyword: string
  instancePath: string
  schemaPath: string
  params: Record<string, unknown>
  message?: string | undefined
}

function response(code: ErrorCodeName, message: string, status: number = HTTP_STATUS[code]): ApiErrorResponse {
  const out: ApiErrorResponse = { status, body: { error: { code, message } } }
  if (ErrorCodes[code].temporary) out.retryAfter = 1
  return out
}

/** `/since/offset` in `body` → `body.since.offset`; array items as `[i]`. */
function fieldName(context: string, instancePath: string, child?: string): string {
  let name = context
  for (const part of instancePath.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~')
    name += /^\d+$/.test(key) ? `[${key}]` : `.${key}`
  }
  return child === undefined ? name : `${name}.${child}`
}

/**
 * One sentence that names the offending field. Ajv's own wording is kept for value rules
 * ("must be >= 0"), prefixed with the field; the structural cases get plainer words because
 * ajv's ("must NOT be valid", "must match a schema in anyOf") do not tell a caller what to fix.
 */
export function validationMessage(context: string, issues: readonly ValidationIssue[]): string {
  // Branch errors of an anyOf come before the anyOf error itself; report the anyOf.
  const anyOf = issues.find((i) => i.keyword === 'anyOf' || i.keyword === 'oneOf')
  if (anyOf !== undefined) {
    const names = issues
      .filter((i) => i.keyword === 'required' && i.schemaPath.startsWith(`${anyOf.schemaPath}/`))
      .map((i) => String(i.params['missingProperty']))
    if (names.length > 0) return `${fieldName(context, anyOf.instancePath)} needs one of the fields ${names.join(', ')}`
  }
  const first = issues[0]
  if (first === undefined) return `${context} is invalid`
  switch (first.keyword) {
    case 'required':
      return `${fieldName(context, first.instancePath, String(first.params['missingProperty']))} is required`
    case 'additionalProperties':
      // Only reached when the host app's ajv keeps additional properties instead of removing them.
      return `${fieldName(context, first.instancePath, String(first.params['additionalProperty']))} is not a known field`
    case 'not':
      // The schemas reject unknown fields with `additionalProperties: { not: {} }` (see schemas.ts).
      if (first.schemaPath.endsWith('/additionalProperties/not')) return `${fieldName(context, first.instancePath)} is not a known field`
      break
    case 'enum': {
      const allowed = first.params['allowedValues']
      if (Array.isArray(allowed)) return `${fieldName(context, first.instancePath)} must be one of ${allowed.map(String).join(', ')}`
      break
    }
  }
  return `${fieldName(context, first.instancePath)} ${first.message ?? 'is invalid'}`
}

interface FastifyLikeError {
  statusCode?: unknown
  code?: unknown
  message?: unknown
  validation?: unknown
  validationContext?: unknown
}

/**
 * What the API answers for anything a route or Fastify threw. Only HoldfastErrors and Fastify's
 * own 4xx errors carry their message to the caller; anything else is an internal error whose
 * details stay in the log.
 */
export function toApiError(err: unknown): ApiErrorResponse & { internal: boolean } {
  if (err instanceof HoldfastError) return { ...response(err.code, err.message), internal: err.code === 'internal' }
  const e = (typeof err === 'object' && err !== null ? err : {}) as FastifyLikeError
  if (Array.isArray(e.validation)) {
    const context = typeof e.validationContext === 'string' ? e.validationContext : 'body'
    return { ...response('bad_request', validationMessage(context, e.validation as ValidationIssue[])), internal: false }
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500
  if (status >= 400 && status < 500) {
    const message = typeof e.message === 'string' ? e.message : 'bad request'
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { ...response('payload_too_large', message), internal: false }
    // Malformed JSON, an empty JSON body, an unsupported content type: the request, not the server.
    return { ...response('bad_request', message, status), internal: false }
  }
  return { ...response('internal', 'internal error'), internal: true }
}
