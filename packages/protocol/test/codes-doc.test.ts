import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import fc from 'fast-check'
import {
  CloseCodes,
  ErrorCodes,
  adviceFor,
  closeCodeName,
  type ClientMessage,
  type CloseCodeName,
  type ErrorCodeName,
  type PushType,
  type ReconnectAdvice,
} from '../src/index.js'

// The docs are the reference users read; this file fails whenever they and the code tables drift apart.
const docsDir = new URL('../../../docs/', import.meta.url)
const protocolDoc = readFileSync(new URL('protocol.md', docsDir), 'utf8')
const errorsDoc = readFileSync(new URL('errors.md', docsDir), 'utf8')

// Exhaustive by construction: the compiler rejects these objects when a value is added or removed.
const allAdvice = { none: true, reconnect: true, backoff: true, refresh: true, stop: true } satisfies Record<ReconnectAdvice, true>
const commandTypes = {
  connect: true, subscribe: true, unsubscribe: true, publish: true, rpc: true, presence: true,
  presence_stats: true, history: true, ping: true, refresh: true, sub_refresh: true, pong: true,
} satisfies Record<ClientMessage['type'], true>
const pushTypes = {
  pub: true, join: true, leave: true, message: true, ping: true, disconnect: true, subscribe: true, unsubscribe: true,
} satisfies Record<PushType, true>

const closeNames = Object.keys(CloseCodes) as CloseCodeName[]
const errorNames = Object.keys(ErrorCodes) as ErrorCodeName[]

function cells(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '')
  return inner.split(/(?<!\\)\|/).map((c) => c.trim())
}

function unquote(cell: string): string {
  return cell.replace(/^`(.*)`$/, '$1')
}

/** The rows of the one table in `doc` whose header is exactly `header` (cells compared after trimming). */
function table(doc: string, header: string): string[][] {
  const want = cells(header)
  const lines = doc.split('\n')
  const starts = lines.flatMap((l, i) => (l.trim().startsWith('|') && JSON.stringify(cells(l)) === JSON.stringify(want) ? [i] : []))
  assert.equal(starts.length, 1, `expected exactly one table with header ${header}, found ${starts.length}`)
  const start = starts[0] as number
  assert.match(lines[start + 1] ?? '', /^\s*\|(\s*:?-+:?\s*\|)+\s*$/, `table ${header} has no separator row`)
  const rows: string[][] = []
  for (let i = start + 2; i < lines.length && (lines[i] ?? '').trim().startsWith('|'); i++) {
    const row = cells(lines[i] as string)
    assert.equal(row.length, want.length, `row ${i + 1} of table ${header} has ${row.length} cells`)
    rows.push(row)
  }
  return rows
}

/** Text of the `## title` section, up to the next heading of the same or a higher level. */
function section(doc: string, title: string): string {
  const lines = doc.split('\n')
  const start = lines.findIndex((l) => l.trim() === `## ${title}`)
  assert.notEqual(start, -1, `docs/protocol.md has no "## ${title}" section`)
  const end = lines.findIndex((l, i) => i > start && /^#{1,2} /.test(l))
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n')
}

function byName(rows: string[][], nameColumn: number): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const row of rows) {
    const name = unquote(row[nameColumn] ?? '')
    assert.ok(!out.has(name), `${name} is listed twice`)
    out.set(name, row)
  }
  return out
}

test('close code table in docs/protocol.md matches CloseCodes both ways', () => {
  const rows = byName(table(protocolDoc, '| code | name | advice | description |'), 1)
  for (const name of closeNames) {
    const row = rows.get(name)
    assert.ok(row !== undefined, `close code ${name} is missing from docs/protocol.md`)
    const [code, , advice, description] = row
    assert.equal(Number(code), CloseCodes[name].code, `close code ${name}: doc says ${code}`)
    assert.equal(unquote(advice ?? ''), CloseCodes[name].advice, `close code ${name}: doc says advice ${advice}`)
    assert.ok((description ?? '').length > 10, `close code ${name} has no description`)
  }
  for (const name of rows.keys()) assert.ok(Object.hasOwn(CloseCodes, name), `docs/protocol.md lists close code ${name}, which CloseCodes lacks`)
})

test('error code table in docs/protocol.md matches ErrorCodes both ways', () => {
  const rows = byName(table(protocolDoc, '| code | name | temporary | description |'), 1)
  for (const name of errorNames) {
    const row = rows.get(name)
    assert.ok(row !== undefined, `error code ${name} is missing from docs/protocol.md`)
    const [code, , temporary, description] = row
    assert.equal(Number(code), ErrorCodes[name].code, `error code ${name}: doc says ${code}`)
    assert.ok(temporary === 'yes' || temporary === 'no', `error code ${name}: temporary must be yes or no, not ${temporary}`)
    assert.equal(temporary === 'yes', ErrorCodes[name].temporary, `error code ${name}: doc says temporary ${temporary}`)
    assert.ok((description ?? '').length > 10, `error code ${name} has no description`)
  }
  for (const name of rows.keys()) assert.ok(Object.hasOwn(ErrorCodes, name), `docs/protocol.md lists error code ${name}, which ErrorCodes lacks`)
})

test('every advice value is explained, and nothing else is', () => {
  const text = section(protocolDoc, 'Reconnect advice')
  const explained = [...text.matchAll(/^- `([a-z_]+)`/gm)].map((m) => m[1])
  assert.deepEqual([...explained].sort(), Object.keys(allAdvice).sort())
  for (const info of Object.values(CloseCodes)) assert.ok(Object.hasOwn(allAdvice, info.advice))
})

test('every command and push has its own heading', () => {
  const headings = (title: string) => new Set([...section(protocolDoc, title).matchAll(/^### `([a-z_]+)`/gm)].map((m) => m[1]))
  const commands = headings('Commands')
  for (const type of Object.keys(commandTypes)) if (type !== 'pong') assert.ok(commands.has(type), `## Commands lacks ### \`${type}\``)
  assert.ok(/`pong`/.test(section(protocolDoc, 'Heartbeats')), 'the pong message is not described under Heartbeats')
  const pushes = headings('Pushes')
  assert.deepEqual([...pushes].sort(), Object.keys(pushTypes).sort())
})

test('docs/errors.md lists every error code, with the side that raises it', () => {
  const rows = byName(table(errorsDoc, '| code | when |'), 0)
  assert.deepEqual([...rows.keys()].sort(), [...errorNames].sort())
  for (const [name, [, when]] of rows) {
    assert.match(when ?? '', /^\*\*(server|client|both)\*\*/, `errors.md: "when" of ${name} must start with **server**, **client** or **both**`)
  }
})

test('close codes are unique and in the ranges a WebSocket close frame may carry', () => {
  const codes = Object.values(CloseCodes).map((c) => c.code)
  assert.equal(new Set(codes).size, codes.length)
  for (const code of codes) {
    assert.ok(Number.isInteger(code) && ((code >= 1000 && code <= 1015) || (code >= 4000 && code <= 4999)), `close code ${code} out of range`)
  }
})

test('error codes are unique', () => {
  const codes = Object.values(ErrorCodes).map((c) => c.code)
  assert.equal(new Set(codes).size, codes.length)
})

test('adviceFor follows the table and backs off on codes it does not know', () => {
  for (const name of closeNames) {
    assert.equal(adviceFor(CloseCodes[name].code), CloseCodes[name].advice)
    assert.equal(closeCodeName(CloseCodes[name].code), name)
  }
  const known = new Set<number>(Object.values(CloseCodes).map((c) => c.code))
  for (const code of [1003, 1005, 1008, 1010, 1012, 1013, 1014, 1015, 3000, 4014, 4999, 0, -1, 65536, 4000.5, Number.NaN]) {
    assert.equal(adviceFor(code), 'backoff', `adviceFor(${code})`)
    assert.equal(closeCodeName(code), undefined)
  }
  fc.assert(
    fc.property(fc.oneof(fc.integer({ min: 1000, max: 4999 }), fc.integer(), fc.double()).filter((c) => !known.has(c)), (code) => {
      assert.equal(adviceFor(code), 'backoff')
    }),
    { numRuns: 2000 },
  )
})
