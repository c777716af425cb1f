import { HoldfastError } from '@holdfast/protocol'
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { NAMESPACE_RE } from './channel-name.js'

/**
 * Per-namespace schemas of client publications: `{ chat: ChatMessage }` checks the `data` of
 * every client publish to `chat:*` with that schema, from any library that implements Standard
 * Schema (zod, valibot, arktype...). A namespace without an entry is not checked.
 */
export type ChannelSchemas = Readonly<Record<string, StandardSchemaV1>>

/** Validates the `channelSchemas` option once, at construction: a TypeError names what is wrong. */
export function resolveChannelSchemas(value: unknown): ChannelSchemas {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError('holdfast: option "channelSchemas" must be an object of namespace → Standard Schema')
  }
  const out: Record<string, StandardSchemaV1> = {}
  for (const [ns, schema] of Object.entries(value)) {
    if (!NAMESPACE_RE.test(ns)) throw new TypeError(`holdfast: option "channelSchemas.${ns}": namespace name must match ${NAMESPACE_RE}`)
    const std = (schema as Partial<StandardSchemaV1> | null)?.['~standard']
    if (std?.version !== 1 || typeof std.validate !== 'function') {
      throw new TypeError(`holdfast: option "channelSchemas.${ns}" must be a Standard Schema (zod, valibot, arktype...), with ~standard.validate`)
    }
    out[ns] = schema as StandardSchemaV1
  }
  return out
}

/** Issues quoted in a refusal: enough to find the field, bounded in length. */
const MAX_ISSUES = 3

/** "path.to.field: message; ..." of a failed validation. */
export function describeIssues(issues: ReadonlyArray<StandardSchemaV1.Issue>): string {
  const parts = issues.slice(0, MAX_ISSUES).map((issue) => {
    const path = (issue.path ?? []).map((p) => String(typeof p === 'object' ? p.key : p)).join('.')
    return path ? `${path}: ${issue.message}` : issue.message
  })
  return parts.join('; ') + (issues.length > MAX_ISSUES ? `; and ${issues.length - MAX_ISSUES} more` : '')
}

/**
 * Checks a client publication's data against its namespace's schema; refuses it with
 * `bad_request` (the issues in the message and as the cause) when it does not match. The data is
 * stored as sent: a schema's transforms are not applied.
 */
export async function checkChannelData(schemas: ChannelSchemas, namespace: string, data: unknown): Promise<void> {
  const schema = schemas[namespace]
  if (schema === undefined) return
  const result = await schema['~standard'].validate(data)
  if (result.issues !== undefined) {
    throw new HoldfastError('bad_request', `data does not match the schema of namespace "${namespace}": ${describeIssues(result.issues)}`, { cause: result.issues })
  }
}
