import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { ErrorCodes } from '@holdfast/protocol'
import { HTTP_STATUS } from '../src/api/index.js'
import { METHODS } from '../src/api/methods.js'
import { startApi, type ApiServer } from './api-helpers.js'

interface Operation {
  operationId: string
  security?: unknown[]
  parameters?: Array<{ name: string; in: string; required: boolean; schema: unknown }>
  requestBody?: { required: boolean; content: { 'application/json': { schema: unknown } } }
  responses: Record<string, { description: string; content?: { 'application/json': { schema: unknown } } }>
}

interface RouteSchema {
  body?: unknown
  headers?: { properties: Record<string, unknown>; required?: string[] }
  response?: Record<string, unknown>
}

describe('server HTTP API: the OpenAPI document', () => {
  let s: ApiServer
  let doc: { openapi: string; info: { version: string }; paths: Record<string, Record<string, Operation>>; security: unknown[]; components: { securitySchemes: Record<string, unknown> } }
  before(async () => {
    s = await startApi()
    const res = await fetch(`${s.base}/api/openapi.json`)
    assert.equal(res.status, 200)
    // Parsing is the first check: the document is valid JSON.
    doc = JSON.parse(await res.text())
  })
  after(() => s.close())

  /** The API's routes as Fastify registered them (HEAD twins of GET routes are Fastify's, not ours). */
  function apiRoutes(): Array<{ method: string; url: string; schema: RouteSchema }> {
    return s.routes
      .filter((r) => r.url.startsWith('/api/'))
      .flatMap((r) => (Array.isArray(r.method) ? r.method : [r.method]).map((method) => ({ method: String(method), url: r.url, schema: (r.schema ?? {}) as RouteSchema })))
      .filter((r) => r.method !== 'HEAD')
  }

  it('is OpenAPI 3.1 with the apikey security scheme applied by default', () => {
    assert.equal(doc.openapi, '3.1.0')
    assert.equal(typeof doc.info.version, 'string')
    assert.deepEqual(doc.components.securitySchemes['apiKey'], { type: 'apiKey', in: 'header', name: 'Authorization', description: 'The header value is `apikey <key>`.' })
    assert.deepEqual(doc.security, [{ apiKey: [] }])
  })

  it('documents every route Fastify serves, with the very schemas Fastify validates and serializes with', () => {
    const routes = apiRoutes()
    // Every method, GET info and the document itself.
    assert.equal(routes.length, METHODS.length + 2)
    for (const r of routes) {
      const op = doc.paths[r.url]?.[r.method.toLowerCase()]
      assert.ok(op !== undefined, `${r.method} ${r.url} is missing from the document`)
      const where = `${r.method} ${r.url}`
      assert.deepEqual(op.requestBody?.content['application/json'].schema, r.schema.body, `${where}: request body schema`)
      const headerProps = r.schema.headers?.properties ?? {}
      assert.deepEqual(
        Object.fromEntries((op.parameters ?? []).filter((p) => p.in === 'header').map((p) => [p.name, p.schema])),
        headerProps,
        `${where}: header parameters`,
      )
      if (r.schema.response === undefined) {
        assert.deepEqual(Object.keys(op.responses), ['200'], `${where}: only the 200 is documented`)
      } else {
        assert.deepEqual(Object.keys(op.responses).sort(), Object.keys(r.schema.response).sort(), `${where}: statuses`)
        for (const [status, schema] of Object.entries(r.schema.response)) {
          assert.deepEqual(op.responses[status]?.content?.['application/json'].schema, schema, `${where}: ${status} response schema`)
          assert.ok((op.responses[status]?.description.length ?? 0) > 0, `${where}: ${status} has a description`)
        }
      }
    }
    // And nothing is documented that is not served.
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
    assert.deepEqual(documented.sort(), routes.map((r) => `${r.method} ${r.url}`).sort())
  })

  it('every method is a POST with a JSON body; only the document itself is public', () => {
    for (const m of METHODS) {
      const op = doc.paths[`/api/${m.name}`]?.['post']
      assert.ok(op?.requestBody !== undefined, m.name)
      assert.equal(op.operationId, m.name)
      assert.equal(op.security, undefined, `${m.name} inherits the apikey requirement`)
      assert.ok(op.responses['401'] !== undefined && op.responses['400'] !== undefined, `${m.name} documents 400 and 401`)
      // Methods with required fields say so; the field-less ones may be called without a body.
      assert.equal(op.requestBody.required, !['channels', 'info'].includes(m.name), m.name)
    }
    assert.deepEqual(doc.paths['/api/openapi.json']?.['get']?.security, [])
    assert.equal(doc.paths['/api/info']?.['get']?.security, undefined)
    const ids = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((op) => op.operationId))
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  })

  it('the error schema names every error code of the protocol table', () => {
    const schema = doc.paths['/api/publish']?.['post']?.responses['400']?.content?.['application/json'].schema as {
      properties: { error: { properties: { code: { enum: string[] } } } }
    }
    assert.deepEqual(schema.properties.error.properties.code.enum, Object.keys(ErrorCodes))
  })
})

describe('docs/api.md', () => {
  const text = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8')

  it('has a section with a curl example for every method', () => {
    for (const m of METHODS) {
      const start = text.indexOf(`\n### \`${m.name}\``)
      assert.ok(start !== -1, `docs/api.md has no "### \`${m.name}\`" section`)
      const end = text.indexOf('\n### ', start + 1)
      const section = text.slice(start, end === -1 ? undefined : end)
      // The examples write the base URL as $API (http://host:port/api).
      assert.match(section, new RegExp(`curl [^\\n]*(/api|\\$API)/${m.name}\\b`), `${m.name}: a curl example`)
      assert.match(section, /```json\n[\s\S]*?\n```/, `${m.name}: a JSON response example`)
    }
  })

  it('lists every error code with the HTTP status the API answers', () => {
    const rows = new Map<string, number>()
    for (const m of text.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)) rows.set(m[1] as string, Number(m[2]))
    assert.deepEqual(Object.fromEntries(rows), { ...HTTP_STATUS })
  })
})
