import type { JsonSchema } from './schemas.js'

/** A route's Fastify schema: the very objects Fastify validates and serializes with. */
export interface RouteSchema {
  body?: JsonSchema
  headers?: JsonSchema
  response?: Readonly<Record<number, JsonSchema>>
}

/** What the document needs to know about one route of the API. */
export interface DocumentedRoute {
  method: 'GET' | 'POST'
  /** Full path, prefix included. */
  path: string
  operationId: string
  summary: string
  description: string
  /** Served without the API key. */
  public: boolean
  schema: RouteSchema
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'Done.',
  400: 'Invalid request: a field is missing or wrong (`bad_request`, named in the message), or the channel name is invalid (`unknown_channel`).',
  401: 'Missing or wrong `Authorization: apikey <key>` header (`unauthorized`).',
  403: 'Not allowed for this channel namespace (`not_available`, `permission_denied`).',
  409: 'Conflicts with the stream state (`unrecoverable_position`).',
  413: 'The request body is larger than the server accepts (`payload_too_large`).',
  415: 'The body is not `application/json` (`bad_request`).',
  500: 'Unexpected server error (`internal`).',
  503: 'The engine (e.g. Redis) is unavailable; nothing was done (`engine_unavailable`). Retry after the `Retry-After` delay.',
}

function isRequired(body: JsonSchema): boolean {
  const required = body['required']
  return (Array.isArray(required) && required.length > 0) || body['anyOf'] !== undefined
}

/** One header parameter per property of the headers schema, each pointing at that property's schema object. */
function headerParameters(headers: JsonSchema | undefined): unknown[] {
  if (headers === undefined) return []
  const props = (headers['properties'] ?? {}) as Record<string, JsonSchema>
  const required = Array.isArray(headers['required']) ? (headers['required'] as unknown[]) : []
  return Object.entries(props).map(([name, schema]) => ({
    name,
    in: 'header',
    required: required.includes(name),
    ...(typeof schema['description'] === 'string' ? { description: schema['description'] } : {}),
    schema,
  }))
}

/**
 * The OpenAPI 3.1 document of the server API, built from the route table that Fastify serves,
 * so that every route, body, header and response schema in it is the object in force.
 *
 * Written here rather than with @fastify/swagger: the API is a plugin that applications register
 * inside their own Fastify instance, under a prefix of their choice. @fastify/swagger documents
 * every route of the instance it is registered on and must be registered before those routes, so
 * it would either describe the application's own routes as holdfast's or make the application
 * register it for us. The document here covers exactly the API's routes, from the same schemas.
 */
export function buildOpenApi(routes: readonly DocumentedRoute[], opts: { version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const { body, headers, response } = r.schema
    const parameters = headerParameters(headers)
    const responses: Record<string, unknown> = {}
    if (response === undefined) responses['200'] = { description: STATUS_TEXT[200] }
    else {
      for (const [status, schema] of Object.entries(response)) {
        responses[status] = { description: STATUS_TEXT[Number(status)] ?? 'See the error code.', content: { 'application/json': { schema } } }
      }
    }
    paths[r.path] ??= {}
    paths[r.path]![r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      description: r.description,
      ...(r.public ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(body === undefined ? {} : { requestBody: { required: isRequired(body), content: { 'application/json': { schema: body } } } }),
      responses,
    }
  }
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'holdfast server API',
      version: opts.version,
      description:
        'Control a holdfast gateway over HTTP: publish, broadcast, disconnect, server-side subscriptions, presence, history, channels and node info. ' +
        'Every method is `POST <prefix>/<method>` with a JSON body; every error is `{ "error": { "code", "message" } }` with a stable code.',
    },
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'The header value is `apikey <key>`.' },
      },
    },
    security: [{ apiKey: [] }],
    paths,
  }
}
