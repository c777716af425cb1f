import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createOriginCheck } from '../src/auth/origin.js'

/** [allowed entries, origin, expected] */
type Case = [string[], string | undefined, boolean]

const matrix: Case[] = [
  // An empty list and '*' allow everything, even what would otherwise be malformed.
  [[], 'https://anything.example', true],
  [[], 'null', true],
  [['*'], 'http://evil.example', true],
  [['https://app.example.com', '*'], 'http://evil.example', true],

  // No Origin header: not a browser, nothing to check.
  [['https://app.example.com'], undefined, true],

  // Exact: scheme, host and port all count.
  [['https://app.example.com'], 'https://app.example.com', true],
  [['https://app.example.com'], 'http://app.example.com', false],
  [['https://app.example.com'], 'https://app.example.com:8443', false],
  [['https://app.example.com'], 'https://example.com', false],
  [['https://app.example.com'], 'https://app.example.com.evil.com', false],
  [['https://app.example.com'], 'https://evilapp.example.com', false],
  [['https://app.example.com'], 'https://x.app.example.com', false],

  // Case and default ports are normalised on both sides.
  [['https://app.example.com'], 'HTTPS://APP.Example.COM', true],
  [['HTTPS://App.Example.Com'], 'https://app.example.com', true],
  [['https://app.example.com'], 'https://app.example.com:443', true],
  [['https://app.example.com:443'], 'https://app.example.com', true],
  [['http://localhost'], 'http://localhost:80', true],
  [['http://localhost:3000'], 'http://localhost:3000', true],
  [['http://localhost:3000'], 'http://localhost:3001', false],
  [['http://localhost:3000'], 'http://localhost', false],
  [['http://127.0.0.1:8080'], 'http://127.0.0.1:8080', true],
  [['http://[::1]:8080'], 'http://[::1]:8080', true],
  [['http://[::1]:8080'], 'http://[0:0:0:0:0:0:0:1]:8080', true],
  [['https://bücher.example'], 'https://xn--bcher-kva.example', true],

  // Wildcards: one or more labels, never the bare domain, never a lookalike.
  [['https://*.example.com'], 'https://app.example.com', true],
  [['https://*.example.com'], 'https://a.b.example.com', true],
  [['https://*.example.com'], 'https://APP.EXAMPLE.COM:443', true],
  [['https://*.example.com'], 'https://example.com', false],
  [['https://*.example.com'], 'https://.example.com', false],
  [['https://*.example.com'], 'https://example.com.evil.com', false],
  [['https://*.example.com'], 'https://app.example.com.evil.com', false],
  [['https://*.example.com'], 'https://evilexample.com', false],
  [['https://*.example.com'], 'https://app-example.com', false],
  [['https://*.example.com'], 'http://app.example.com', false],
  [['https://*.example.com'], 'https://app.example.com:8443', false],
  [['https://*.example.com:8443'], 'https://app.example.com:8443', true],
  [['https://*.example.com:8443'], 'https://app.example.com', false],

  // No scheme: http and https, each on its default port unless a port is given.
  [['*.example.com'], 'https://app.example.com', true],
  [['*.example.com'], 'http://app.example.com', true],
  [['*.example.com'], 'http://app.example.com:8080', false],
  [['*.example.com'], 'https://example.com', false],
  [['example.com'], 'https://example.com', true],
  [['example.com'], 'http://example.com', true],
  [['example.com'], 'https://www.example.com', false],
  [['example.com:8443'], 'https://example.com:8443', true],
  [['example.com:8443'], 'http://example.com:8443', true],
  [['example.com:8443'], 'https://example.com', false],

  // Malformed origins are refused, whatever the list.
  [['https://app.example.com'], '', false],
  [['https://app.example.com'], 'null', false],
  [['https://app.example.com'], 'app.example.com', false],
  [['https://app.example.com'], 'https://app.example.com/', false],
  [['https://app.example.com'], 'https://app.example.com/path', false],
  [['https://app.example.com'], 'https://app.example.com?x=1', false],
  [['https://app.example.com'], 'https://app.example.com#x', false],
  [['https://app.example.com'], 'https://user@app.example.com', false],
  [['https://app.example.com'], 'https://app.example.com:', false],
  [['https://app.example.com'], 'https://app.example.com:99999', false],
  [['https://app.example.com'], 'https://app.example.com:0', false],
  [['https://app.example.com'], 'https://app.example.com.', false],
  [['https://app.example.com'], 'https://app.ex%61mple.com', false],
  [['https://app.example.com'], 'https://app.example.com, https://evil.com', false],
  [['https://*.example.com'], 'https://evil,x.example.com', false],
  [['https://app.example.com'], 'https://app.example.com\u0000', false],
  [['https://app.example.com'], 'ws://app.example.com', false],
  [['https://app.example.com'], 'file:///etc/passwd', false],
  [['https://app.example.com'], 'chrome-extension://abcdef', false],
  [['https://app.example.com'], 'https://', false],
]

describe('createOriginCheck', () => {
  for (const [allowed, origin, expected] of matrix) {
    it(`${JSON.stringify(allowed)} ${expected ? 'allows' : 'refuses'} ${JSON.stringify(origin)}`, () => {
      assert.equal(createOriginCheck(allowed)(origin), expected)
    })
  }

  it('refuses invalid entries at construction, naming the option and the entry', () => {
    for (const entry of ['ftp://example.com', 'https://example.com/path', 'https://', '', 'https://exa mple.com', 'https://*', 'https://a.*.example.com', 'https://example.com:99999']) {
      assert.throws(
        () => createOriginCheck([entry]),
        (err: unknown) => err instanceof TypeError && err.message.includes('allowedOrigins') && err.message.includes(`"${entry}"`),
        `entry ${JSON.stringify(entry)}`,
      )
    }
    assert.throws(() => createOriginCheck('https://example.com' as unknown as string[]), TypeError)
    assert.throws(() => createOriginCheck([42 as unknown as string]), TypeError)
  })

  it('does not share state between checks', () => {
    const a = createOriginCheck(['https://a.example'])
    const b = createOriginCheck(['https://b.example'])
    assert.equal(a('https://b.example'), false)
    assert.equal(b('https://a.example'), false)
  })
})
