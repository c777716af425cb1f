import assert from 'node:assert/strict'
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { describe, it } from 'node:test'
import { tokenFromRequest } from '../src/auth/token-source.js'

function request(url: string, headers: Record<string, string> = {}): IncomingMessage {
  const req = new IncomingMessage(new Socket())
  req.url = url
  for (const [name, value] of Object.entries(headers)) req.headers[name.toLowerCase()] = value
  return req
}

describe('tokenFromRequest', () => {
  const cases: Array<[string, string, Record<string, string>, string | undefined]> = [
    ['bearer header', '/ws', { Authorization: 'Bearer abc.def.ghi' }, 'abc.def.ghi'],
    ['bearer scheme in any case', '/ws', { Authorization: 'bEaReR abc' }, 'abc'],
    ['extra spaces around the token', '/ws', { Authorization: 'Bearer   abc  ' }, 'abc'],
    ['query parameter', '/ws?token=abc.def.ghi', {}, 'abc.def.ghi'],
    ['query parameter among others', '/ws?v=1&token=abc&x=2', {}, 'abc'],
    ['percent-encoded query parameter', '/ws?token=a%2Eb', {}, 'a.b'],
    ['the first of repeated query parameters', '/ws?token=first&token=second', {}, 'first'],
    ['the header over the query', '/ws?token=from-query', { Authorization: 'Bearer from-header' }, 'from-header'],
    ['the query when the header is not Bearer', '/ws?token=q', { Authorization: 'Basic dXNlcjpwYXNz' }, 'q'],
    ['the query when the Bearer header is empty', '/ws?token=q', { Authorization: 'Bearer ' }, 'q'],
    ['the query when the Bearer header holds two words', '/ws?token=q', { Authorization: 'Bearer a b' }, 'q'],
    ['not the fragment', '/ws?v=1#token=abc', {}, undefined],
    ['the query without the fragment after it', '/ws?token=abc#frag', {}, 'abc'],
    ['nothing from a query inside the fragment', '/ws#?token=abc', {}, undefined],
    ['the query even after an odd path', '//evil.example/ws?token=abc', {}, 'abc'],
    ['nothing without a token', '/ws', {}, undefined],
    ['nothing for an empty query parameter', '/ws?token=', {}, undefined],
    ['nothing for a similar parameter name', '/ws?access_token=abc&tokens=x', {}, undefined],
    ['nothing from a Basic header alone', '/ws', { Authorization: 'Basic dXNlcjpwYXNz' }, undefined],
    ['nothing from a bare "Bearer"', '/ws', { Authorization: 'Bearer' }, undefined],
    ['nothing from "Bearerabc"', '/ws', { Authorization: 'Bearerabc' }, undefined],
    ['nothing from cookies', '/ws', { Cookie: 'token=abc' }, undefined],
    ['nothing from other headers', '/ws', { 'X-Token': 'abc', 'Sec-WebSocket-Protocol': 'token, abc' }, undefined],
  ]
  for (const [name, url, headers, expected] of cases) {
    it(`reads ${name}`, () => {
      assert.equal(tokenFromRequest(request(url, headers)), expected)
    })
  }

  it('copes with a request that has no url', () => {
    const req = new IncomingMessage(new Socket())
    assert.equal(tokenFromRequest(req), undefined)
  })
})
