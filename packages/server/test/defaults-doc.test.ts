// docs/protocol.md's "Server defaults" table against the server's DEFAULTS: a client author
// reads the numbers there, so a default that changes without the doc fails here.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { CHANNEL_DEFAULTS, DEFAULTS } from '../src/options.js'

const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8')

function section(title: string): string {
  const start = doc.indexOf(`\n## ${title}\n`)
  assert.ok(start >= 0, `docs/protocol.md has no "## ${title}"`)
  const end = doc.indexOf('\n## ', start + 1)
  return doc.slice(start, end < 0 ? undefined : end)
}

/** `1,000 publications`, `300,000 (5 min)`, `{ "perSecond": 100, "burst": 200 }`, `historySize`. */
function parseValue(cell: string): unknown {
  const code = /^`(.*)`$/.exec(cell)
  if (code) return code[1]?.startsWith('{') ? JSON.parse(code[1]) : { ref: code[1] }
  const n = /^([\d,]+)/.exec(cell)
  assert.ok(n, `cannot read the default "${cell}"`)
  return Number(n[1]?.replaceAll(',', ''))
}

test('every row of the server defaults table is the server default', () => {
  const rows = [...section('Server defaults').matchAll(/^\| (channel )?`(\w+)` \| ([^|]+) \|/gm)]
  assert.ok(rows.length >= 15, `only ${rows.length} rows`)
  for (const [, channel, name, cell] of rows) {
    const defaults: Record<string, unknown> = channel ? CHANNEL_DEFAULTS : DEFAULTS
    assert.ok(name !== undefined && name in defaults, `${name} is not a ${channel ? 'channel ' : ''}option`)
    const value = parseValue((cell ?? '').trim())
    const expected = typeof value === 'object' && value !== null && 'ref' in value ? defaults[(value as { ref: string }).ref] : value
    assert.deepEqual(defaults[name], expected, `${channel ?? ''}${name}: the doc says ${cell}`)
  }
})
