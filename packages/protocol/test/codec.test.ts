import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import fc from 'fast-check'
import {
  CloseCodes,
  ErrorCodes,
  HoldfastError,
  Subprotocols,
  codecFor,
  jsonCodec,
  msgpackCodec,
  validateClientMessage,
  validateServerMessage,
  type ClientInfo,
  type ClientMessage,
  type Codec,
  type CommandType,
  type DecodeLimits,
  type ErrorReply,
  type FrameData,
  type Publication,
  type Push,
  type PushType,
  type ResultByType,
  type ServerMessage,
  type StreamPosition,
} from '../src/index.js'
import { jsonClientCodec } from '../src/internal.js'

// Robustness properties run this many cases each; round trips fewer per message type.
const RUNS = 2000
const TYPE_RUNS = 200
// Inputs here are at most a few hundred kilobytes; a decode that takes a second is a hang in the making.
const DECODE_BOUND_MS = 1000

const codecs = [jsonCodec, msgpackCodec] as const
type Flavor = Codec['name']

// Object.prototype must look the same after every decode in this file.
const prototypeKeysBefore = Reflect.ownKeys(Object.prototype)
function assertPrototypeClean(): void {
  assert.deepEqual(Reflect.ownKeys(Object.prototype), prototypeKeysBefore)
  const probe: Record<string, unknown> = {}
  for (const key of ['polluted', 'isAdmin', 'type', 'id']) assert.equal(probe[key], undefined, `Object.prototype.${key} was set`)
}
after(assertPrototypeClean)

// ---------------------------------------------------------------- arbitraries

// fast-check's jsonValue() produces -0, which no JSON text written by JSON.stringify can carry
// (and MessagePack encodes as the integer 0): neither codec keeps the sign of zero.
function withoutNegativeZero(v: unknown): unknown {
  if (Object.is(v, -0)) return 0
  if (Array.isArray(v)) return v.map(withoutNegativeZero)
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: withoutNegativeZero(x), enumerable: true, writable: true, configurable: true })
    return out
  }
  return v
}

/** True when some object inside `v` has an own `__proto__` key (which JSON.parse creates as plain data). */
function hasProtoKey(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasProtoKey)
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return false
  return Object.hasOwn(v, '__proto__') || Object.values(v).some(hasProtoKey)
}

// `__proto__` keys are refused in client frames (see the last section), so round trips leave them out.
const jsonData: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 4 }).map(withoutNegativeZero).filter((v) => !hasProtoKey(v))

/** Strings either codec must carry exactly: ASCII, any Unicode scalar, graphemes, and (JSON only) lone surrogates. */
function stringArb(flavor: Flavor, maxLength = 24): fc.Arbitrary<string> {
  const units: fc.Arbitrary<string>[] = [
    fc.string({ maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
  ]
  // JSON.stringify escapes a lone surrogate as \udXXX, so JSON keeps it; MessagePack strings are UTF-8 and cannot.
  if (flavor === 'json') {
    const surrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))
    units.push(fc.string({ unit: fc.oneof(fc.string({ minLength: 1, maxLength: 1 }), surrogate), maxLength }))
  }
  return fc.oneof(...units)
}

// MessagePack data: JSON values plus bytes and non-ASCII strings and keys. `__proto__` keys are
// left out because the decoder refuses them (tested separately below).
const msgpackData: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double().map(withoutNegativeZero),
    stringArb('msgpack'),
    fc.uint8Array({ maxLength: 64 }),
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('value'), { maxLength: 5 }),
  object: fc.dictionary(
    stringArb('msgpack', 8).filter((k) => k !== '__proto__'),
    tie('value'),
    { maxKeys: 5, noNullPrototype: true },
  ),
})).value

type ClientOf<K extends ClientMessage['type']> = Extract<ClientMessage, { type: K }>
type PushOf<K extends PushType> = Extract<Push, { type: K }>

interface Arbs {
  data: fc.Arbitrary<unknown>
  client: { [K in ClientMessage['type']]: fc.Arbitrary<ClientOf<K>> }
  result: { [K in CommandType]: fc.Arbitrary<ResultByType[K]> }
  push: { [K in PushType]: fc.Arbitrary<PushOf<K>> }
  errorReply: fc.Arbitrary<ErrorReply>
  anyClient: fc.Arbitrary<ClientMessage>
  anyServer: fc.Arbitrary<ServerMessage>
}

function arbsFor(flavor: Flavor): Arbs {
  const data = flavor === 'json' ? jsonData : fc.oneof(jsonData, msgpackData)
  const str = stringArb(flavor)
  const id = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
  const uint = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat())
  const opts = { noNullPrototype: true } as const
  const position: fc.Arbitrary<StreamPosition> = fc.record({ offset: uint, epoch: str }, opts)
  const session = fc.record({ id: str, token: str }, opts)
  const clientInfo: fc.Arbitrary<ClientInfo> = fc.record({ client: str, user: str, info: data }, { requiredKeys: ['client', 'user'], ...opts })
  const publication: fc.Arbitrary<Publication> = fc.record({ offset: uint, data, info: clientInfo }, { requiredKeys: ['offset', 'data'], ...opts })
  const publications = fc.array(publication, { maxLength: 4 })
  const channel = fc.oneof(fc.constantFrom('chat:lobby', 'news', '$user:alice'), str)

  const client: Arbs['client'] = {
    connect: fc.record(
      { id, type: fc.constant('connect'), version: fc.oneof(fc.constant(1), uint), token: str, session, name: str, data },
      { requiredKeys: ['id', 'type', 'version'], ...opts },
    ),
    subscribe: fc.record({ id, type: fc.constant('subscribe'), channel, recover: position, data, token: str }, { requiredKeys: ['id', 'type', 'channel'], ...opts }),
    unsubscribe: fc.record({ id, type: fc.constant('unsubscribe'), channel }, opts),
    publish: fc.record({ id, type: fc.constant('publish'), channel, data, msgId: str }, opts),
    rpc: fc.record({ id, type: fc.constant('rpc'), method: str, data, msgId: str }, { requiredKeys: ['id', 'type', 'method', 'msgId'], ...opts }),
    presence: fc.record({ id, type: fc.constant('presence'), channel }, opts),
    presence_stats: fc.record({ id, type: fc.constant('presence_stats'), channel }, opts),
    history: fc.record(
      { id, type: fc.constant('history'), channel, since: position, limit: uint, reverse: fc.boolean() },
      { requiredKeys: ['id', 'type', 'channel'], ...opts },
    ),
    ping: fc.record({ id, type: fc.constant('ping') }, opts),
    refresh: fc.record({ id, type: fc.constant('refresh'), token: str }, opts),
    sub_refresh: fc.record({ id, type: fc.constant('sub_refresh'), channel, token: str }, opts),
    pong: fc.constant({ type: 'pong' }),
  }

  const result: Arbs['result'] = {
    connect: fc.record(
      { client: str, session, resumed: fc.boolean(), version: uint, node: str, ping: uint, expiresIn: uint, data },
      { requiredKeys: ['client', 'session', 'resumed', 'version', 'node', 'ping'], ...opts },
    ),
    subscribe: fc.record({ epoch: str, offset: uint, recovered: fc.boolean(), wasRecovering: fc.boolean(), publications, expiresIn: uint }, { requiredKeys: ['epoch', 'offset', 'recovered', 'wasRecovering', 'publications'], ...opts }),
    unsubscribe: fc.constant({}),
    publish: fc.record({ offset: uint, epoch: str, duplicate: fc.boolean() }, { requiredKeys: ['offset', 'epoch'], ...opts }),
    rpc: fc.record({ data }, { requiredKeys: [], ...opts }),
    presence: fc.record({ clients: fc.dictionary(str.filter((k) => k !== '__proto__'), clientInfo, { maxKeys: 4, noNullPrototype: true }) }, opts),
    presence_stats: fc.record({ clients: uint, users: uint }, opts),
    history: fc.record({ epoch: str, offset: uint, publications }, opts),
    ping: fc.constant({}),
    refresh: fc.record({ expiresIn: uint }, { requiredKeys: [], ...opts }),
    sub_refresh: fc.record({ expiresIn: uint }, { requiredKeys: [], ...opts }),
  }

  const closeCode = fc.oneof(fc.constantFrom(...Object.values(CloseCodes).map((c) => c.code)), fc.integer({ min: 0, max: 65535 }))
  const push: Arbs['push'] = {
    pub: fc.record({ type: fc.constant('pub'), channel, epoch: str, offset: uint, data, info: clientInfo }, { requiredKeys: ['type', 'channel', 'epoch', 'offset', 'data'], ...opts }),
    join: fc.record({ type: fc.constant('join'), channel, info: clientInfo }, opts),
    leave: fc.record({ type: fc.constant('leave'), channel, info: clientInfo }, opts),
    message: fc.record({ type: fc.constant('message'), data }, opts),
    ping: fc.constant({ type: 'ping' }),
    disconnect: fc.record({ type: fc.constant('disconnect'), code: closeCode, reason: str }, opts),
    subscribe: fc.record({ type: fc.constant('subscribe'), channel, epoch: str, offset: uint }, opts),
    unsubscribe: fc.record({ type: fc.constant('unsubscribe'), channel, code: closeCode, reason: str }, opts),
  }

  const errorCode = fc.oneof(fc.constantFrom(...Object.values(ErrorCodes).map((c) => c.code)), uint)
  const errorReply: fc.Arbitrary<ErrorReply> = fc.record(
    { id, error: fc.record({ code: errorCode, message: str, temporary: fc.boolean() }, opts) },
    opts,
  )
  const resultReply = fc.oneof(...Object.values(result).map((r: fc.Arbitrary<object>) => fc.record({ id, result: r }, opts)))

  return {
    data,
    client,
    result,
    push,
    errorReply,
    anyClient: fc.oneof(...Object.values(client)) as fc.Arbitrary<ClientMessage>,
    anyServer: fc.oneof(resultReply, errorReply, ...Object.values(push)) as fc.Arbitrary<ServerMessage>,
  }
}

const arbs: Record<Flavor, Arbs> = { json: arbsFor('json'), msgpack: arbsFor('msgpack') }

// ---------------------------------------------------------------- decode outcome

type Outcome<T> = { ok: true; messages: T[] } | { ok: false; error: HoldfastError }

function show(e: unknown): string {
  return e instanceof Error ? `${e.constructor.name}: ${e.message}` : typeof e
}

/** Runs a decode that must either return messages or throw HoldfastError('bad_request'), within the time bound. */
function attempt<T>(decode: () => T[]): Outcome<T> {
  // CPU time of this process, not wall time: a pathological decode burns CPU (the bound catches
  // that), while a busy machine only stretches the wall clock.
  const started = process.cpuUsage()
  let outcome: Outcome<T>
  try {
    outcome = { ok: true, messages: decode() }
  } catch (error) {
    if (!(error instanceof HoldfastError)) assert.fail(`decode threw ${show(error)}, not a HoldfastError`)
    assert.equal(error.code, 'bad_request', `decode threw ${error.code}: ${error.message}`)
    outcome = { ok: false, error }
  }
  const used = process.cpuUsage(started)
  const ms = (used.user + used.system) / 1000
  assert.ok(ms < DECODE_BOUND_MS, `decode took ${ms.toFixed(0)} ms of CPU`)
  return outcome
}

function checkAccepted<T>(outcome: Outcome<T>, validate: (v: unknown) => T, maxBatch: number): void {
  if (!outcome.ok) return
  assert.ok(outcome.messages.length >= 1 && outcome.messages.length <= maxBatch, `decoded ${outcome.messages.length} messages`)
  for (const m of outcome.messages) {
    assert.equal(Object.getPrototypeOf(m), Object.prototype)
    assert.equal(validate(m), m)
  }
}

// Client frames hold at most 100 messages unless told otherwise; server frames have no count limit
// (a server coalesces a connection's whole queue into one frame) unless the client sets one.
const CLIENT_MAX_BATCH = 100

/** Decodes `data` as a client frame and as a server frame; each must be a validated batch or bad_request. */
function decodeBothWays(codec: Codec, data: FrameData, limits?: DecodeLimits): void {
  checkAccepted(attempt(() => codec.decodeClient(data, limits)), validateClientMessage, limits?.maxBatch ?? CLIENT_MAX_BATCH)
  checkAccepted(attempt(() => codec.decodeServer(data, limits)), validateServerMessage, limits?.maxBatch ?? Number.POSITIVE_INFINITY)
}

function expectBadRequest(decode: () => unknown[]): HoldfastError {
  const outcome = attempt(decode)
  assert.equal(outcome.ok, false, 'decode accepted input it must reject')
  return (outcome as { ok: false; error: HoldfastError }).error
}

const utf8 = new TextDecoder()

/** The same bytes as an ArrayBuffer and as a view into the middle of a larger buffer. */
function otherForms(bytes: Uint8Array): FrameData[] {
  const copy = new ArrayBuffer(bytes.byteLength)
  new Uint8Array(copy).set(bytes)
  const padded = new Uint8Array(bytes.byteLength + 16).fill(0xc1)
  padded.set(bytes, 7)
  return [copy, padded.subarray(7, 7 + bytes.byteLength)]
}

// ---------------------------------------------------------------- round trips

for (const codec of codecs) {
  const a = arbs[codec.name]

  describe(`${codec.name} codec round trips`, () => {
    for (const [type, arb] of Object.entries(a.client) as [string, fc.Arbitrary<ClientMessage>][]) {
      test(`client ${type}`, () => {
        fc.assert(
          fc.property(arb, (msg) => {
            const bytes = codec.encode(msg)
            assert.deepEqual(codec.decodeClient(bytes), [msg])
            for (const form of otherForms(bytes)) assert.deepEqual(codec.decodeClient(form), [msg])
            if (codec.name === 'json') assert.deepEqual(codec.decodeClient(utf8.decode(bytes)), [msg])
          }),
          { numRuns: TYPE_RUNS },
        )
      })
    }

    for (const [type, arb] of Object.entries(a.result) as [string, fc.Arbitrary<object>][]) {
      test(`reply with ${type} result`, () => {
        fc.assert(
          fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), arb, (id, result) => {
            const msg: ServerMessage = { id, result }
            assert.deepEqual(codec.decodeServer(codec.encode(msg)), [msg])
          }),
          { numRuns: TYPE_RUNS },
        )
      })
    }

    test('error reply', () => {
      fc.assert(
        fc.property(a.errorReply, (msg) => {
          const bytes = codec.encode(msg)
          assert.deepEqual(codec.decodeServer(bytes), [msg])
          for (const form of otherForms(bytes)) assert.deepEqual(codec.decodeServer(form), [msg])
        }),
        { numRuns: TYPE_RUNS },
      )
    })

    for (const [type, arb] of Object.entries(a.push) as [string, fc.Arbitrary<Push>][]) {
      test(`push ${type}`, () => {
        fc.assert(
          fc.property(arb, (msg) => {
            const bytes = codec.encode(msg)
            assert.deepEqual(codec.decodeServer(bytes), [msg])
            if (codec.name === 'json') assert.deepEqual(codec.decodeServer(utf8.decode(bytes)), [msg])
          }),
          { numRuns: TYPE_RUNS },
        )
      })
    }

    test('batched client frames', () => {
      fc.assert(
        fc.property(fc.array(a.anyClient, { minLength: 1, maxLength: 100 }), (msgs) => {
          const frame = codec.frame(msgs.map((m) => codec.encode(m)))
          assert.deepEqual(codec.decodeClient(frame), msgs)
          for (const form of otherForms(frame)) assert.deepEqual(codec.decodeClient(form), msgs)
        }),
        { numRuns: 300 },
      )
    })

    test('batched server frames', () => {
      fc.assert(
        fc.property(fc.array(a.anyServer, { minLength: 1, maxLength: 100 }), (msgs) => {
          const frame = codec.frame(msgs.map((m) => codec.encode(m)))
          assert.deepEqual(codec.decodeServer(frame), msgs)
          if (codec.name === 'json') assert.deepEqual(codec.decodeServer(utf8.decode(frame)), msgs)
        }),
        { numRuns: 300 },
      )
    })

    test('one encoding framed for many receivers decodes the same everywhere', () => {
      fc.assert(
        fc.property(a.push.pub, fc.array(a.anyServer, { maxLength: 5 }), (pub, others) => {
          const shared = codec.encode(pub)
          const frame = codec.frame([...others.map((m) => codec.encode(m)), shared])
          const decoded = codec.decodeServer(frame)
          assert.deepEqual(decoded.at(-1), pub)
          // Framing must not have written into the shared encoding.
          assert.deepEqual(codec.decodeServer(shared), [pub])
        }),
        { numRuns: TYPE_RUNS },
      )
    })
  })
}

test('JSON encodings never contain a raw newline (the line separator)', () => {
  fc.assert(
    fc.property(fc.oneof(arbs.json.anyClient, arbs.json.anyServer), (msg) => {
      assert.equal(jsonCodec.encode(msg).indexOf(0x0a), -1)
    }),
    { numRuns: RUNS },
  )
})

test('MessagePack keeps bytes and non-ASCII text exactly', () => {
  const data = { bytes: new Uint8Array([0, 1, 254, 255]), text: 'żółw 🐢 — 日本語', nested: [new Uint8Array(0), { 'ключ': 'значение' }] }
  const msg: ClientMessage = { id: 7, type: 'publish', channel: 'bin', msgId: 'm-1', data }
  const [decoded] = msgpackCodec.decodeClient(msgpackCodec.encode(msg))
  assert.ok(decoded !== undefined && decoded.type === 'publish')
  assert.ok(decoded.data !== null && typeof decoded.data === 'object' && (decoded.data as { bytes: unknown }).bytes instanceof Uint8Array)
  assert.deepEqual(decoded, msg)
})

test('codecFor picks the codec of the negotiated subprotocol, JSON otherwise', () => {
  assert.equal(codecFor(Subprotocols.msgpack), msgpackCodec)
  assert.equal(codecFor(Subprotocols.json), jsonCodec)
  for (const other of [undefined, null, '', 'holdfast.v2.msgpack', 'HOLDFAST.V1.MSGPACK']) assert.equal(codecFor(other), jsonCodec)
  assert.equal(jsonCodec.subprotocol, 'holdfast.v1.json')
  assert.equal(msgpackCodec.subprotocol, 'holdfast.v1.msgpack')
  assert.equal(jsonCodec.binary, false)
  assert.equal(msgpackCodec.binary, true)
})

test("the browser client's JSON codec is the JSON codec, less the decoding of client frames", () => {
  assert.equal(jsonClientCodec.name, jsonCodec.name)
  assert.equal(jsonClientCodec.subprotocol, jsonCodec.subprotocol)
  assert.equal(jsonClientCodec.binary, jsonCodec.binary)
  const msg: ClientMessage = { id: 1, type: 'publish', channel: 'c', msgId: 'm', data: { b: new Uint8Array([1, 2]) } }
  const parts = [jsonClientCodec.encode(msg), jsonClientCodec.encode({ type: 'pong' })]
  assert.deepEqual(jsonClientCodec.frame(parts), jsonCodec.frame(parts))
  assert.deepEqual(jsonCodec.decodeClient(jsonClientCodec.frame(parts)), [msg, { type: 'pong' }])
  const push = jsonCodec.encode({ type: 'ping' })
  assert.deepEqual(jsonClientCodec.decodeServer(push), jsonCodec.decodeServer(push))
})

test('one message is framed as it is, without a copy, in both codecs', () => {
  for (const codec of [jsonCodec, msgpackCodec]) {
    const one = codec.encode({ type: 'ping' })
    assert.equal(codec.frame([one]), one, codec.name)
  }
})

// ---------------------------------------------------------------- hostile input

describe('decoding hostile input', () => {
  test('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        for (const codec of codecs) decodeBothWays(codec, bytes)
      }),
      { numRuns: RUNS },
    )
  })

  test('random strings', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 256 }), fc.string({ unit: 'binary', maxLength: 256 }), fc.json()), (text) => {
        decodeBothWays(jsonCodec, text)
        // MessagePack is binary only: a text frame is refused whatever it says.
        expectBadRequest(() => msgpackCodec.decodeClient(text))
        expectBadRequest(() => msgpackCodec.decodeServer(text))
      }),
      { numRuns: RUNS },
    )
  })

  test('random JSON values and objects with a type', () => {
    const types = fc.constantFrom('connect', 'subscribe', 'publish', 'rpc', 'history', 'pub', 'join', 'message', 'disconnect', 'pong', 'ping')
    const objectish = fc.dictionary(fc.oneof(fc.constantFrom('id', 'type', 'channel', 'data', 'result', 'error', 'info', 'offset'), fc.string()), fc.jsonValue({ maxDepth: 3 }), { noNullPrototype: true })
    const value = fc.oneof(fc.jsonValue(), objectish, fc.tuple(objectish, types).map(([o, type]) => ({ ...o, type })))
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 4 }), (values) => {
        for (const codec of codecs) {
          const frame = codec.frame(values.map((v) => codec.encode(v as ClientMessage)))
          decodeBothWays(codec, frame)
        }
      }),
      { numRuns: RUNS },
    )
  })

  for (const codec of codecs) {
    const a = arbs[codec.name]

    test(`${codec.name}: truncated frames decode to a prefix of the batch or bad_request`, () => {
      const batch = fc.oneof(
        fc.array(a.anyClient, { minLength: 1, maxLength: 4 }).map((msgs) => ({ side: 'client' as const, msgs })),
        fc.array(a.anyServer, { minLength: 1, maxLength: 4 }).map((msgs) => ({ side: 'server' as const, msgs })),
      )
      fc.assert(
        fc.property(batch, fc.nat(), ({ side, msgs }, cutSeed) => {
          const frame = codec.frame(msgs.map((m) => codec.encode(m)))
          const cut = cutSeed % frame.byteLength
          const truncated = frame.subarray(0, cut)
          const outcome = side === 'client' ? attempt(() => codec.decodeClient(truncated)) : attempt(() => codec.decodeServer(truncated))
          if (outcome.ok) {
            // Only a cut at a message boundary can decode, and then to exactly the messages before it.
            const k = outcome.messages.length
            assert.ok(k < msgs.length)
            assert.deepEqual(outcome.messages, msgs.slice(0, k))
          }
          if (msgs.length === 1 && cut > 0) assert.equal(outcome.ok, false, 'a strict prefix of one message decoded')
        }),
        { numRuns: RUNS },
      )
    })

    test(`${codec.name}: garbled frames`, () => {
      const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 6 })
      fc.assert(
        fc.property(fc.oneof(a.anyClient, a.anyServer), edits, (msg, changes) => {
          const bytes = Array.from(codec.encode(msg))
          for (const [at, byte, op] of changes) {
            const i = bytes.length === 0 ? 0 : at % bytes.length
            if (op === 'set') bytes[i] = byte
            else if (op === 'insert') bytes.splice(i, 0, byte)
            else bytes.splice(i, 1)
          }
          decodeBothWays(codec, Uint8Array.from(bytes))
        }),
        { numRuns: RUNS },
      )
    })
  }
})

// ---------------------------------------------------------------- shapes

// The protocol's field kinds, written down independently of validate.ts.
type FieldKind = 'id' | 'uint' | 'string' | 'bool' | 'data' | 'position' | 'session' | 'clientInfo' | 'result' | 'replyError'
interface FieldSpec {
  required: Record<string, FieldKind>
  optional?: Record<string, FieldKind>
}

const clientFields: { [K in ClientMessage['type']]: FieldSpec } = {
  connect: { required: { id: 'id', version: 'uint' }, optional: { token: 'string', session: 'session', name: 'string', data: 'data' } },
  subscribe: { required: { id: 'id', channel: 'string' }, optional: { recover: 'position', data: 'data', token: 'string' } },
  unsubscribe: { required: { id: 'id', channel: 'string' } },
  publish: { required: { id: 'id', channel: 'string', data: 'data', msgId: 'string' } },
  rpc: { required: { id: 'id', method: 'string', msgId: 'string' }, optional: { data: 'data' } },
  presence: { required: { id: 'id', channel: 'string' } },
  presence_stats: { required: { id: 'id', channel: 'string' } },
  history: { required: { id: 'id', channel: 'string' }, optional: { since: 'position', limit: 'uint', reverse: 'bool' } },
  ping: { required: { id: 'id' } },
  refresh: { required: { id: 'id', token: 'string' } },
  sub_refresh: { required: { id: 'id', channel: 'string', token: 'string' } },
  pong: { required: {} },
}

const pushFields: { [K in PushType]: FieldSpec } = {
  pub: { required: { channel: 'string', epoch: 'string', offset: 'uint', data: 'data' }, optional: { info: 'clientInfo' } },
  join: { required: { channel: 'string', info: 'clientInfo' } },
  leave: { required: { channel: 'string', info: 'clientInfo' } },
  message: { required: { data: 'data' } },
  ping: { required: {} },
  disconnect: { required: { code: 'uint', reason: 'string' } },
  subscribe: { required: { channel: 'string', epoch: 'string', offset: 'uint' } },
  unsubscribe: { required: { channel: 'string', code: 'uint', reason: 'string' } },
}

const replyFields = {
  result: { required: { id: 'id', result: 'result' } },
  error: { required: { id: 'id', error: 'replyError' } },
} satisfies Record<string, FieldSpec>

const notObject = fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null), fc.array(fc.nat(), { maxLength: 3 }))
const notString = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 2, noNullPrototype: true }))
const notUint = fc.oneof(
  fc.integer({ max: -1 }),
  fc.double({ noInteger: true }),
  fc.constantFrom(2 ** 53, -(2 ** 53), 1e300, Number.MAX_VALUE),
  fc.string({ maxLength: 4 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.nat(), { maxLength: 2 }),
)
const notBool = fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.constant(null), fc.array(fc.boolean(), { maxLength: 2 }))
const okString = fc.string({ maxLength: 6 })

function pairWithOneBad<K1 extends string, K2 extends string>(k1: K1, good1: fc.Arbitrary<unknown>, bad1: fc.Arbitrary<unknown>, k2: K2, good2: fc.Arbitrary<unknown>, bad2: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  const o = { noNullPrototype: true } as const
  return fc.oneof(
    notObject,
    fc.record({ [k1]: bad1, [k2]: good2 } as Record<K1 | K2, fc.Arbitrary<unknown>>, o),
    fc.record({ [k1]: good1, [k2]: bad2 } as Record<K1 | K2, fc.Arbitrary<unknown>>, o),
    fc.record({ [k1]: good1 } as Record<K1, fc.Arbitrary<unknown>>, o),
    fc.record({ [k2]: good2 } as Record<K2, fc.Arbitrary<unknown>>, o),
  )
}

const wrongValue: Record<Exclude<FieldKind, 'data'>, fc.Arbitrary<unknown>> = {
  id: fc.oneof(fc.constant(0), notUint),
  uint: notUint,
  string: notString,
  bool: notBool,
  position: pairWithOneBad('offset', fc.nat(), notUint, 'epoch', okString, notString),
  session: pairWithOneBad('id', okString, notString, 'token', okString, notString),
  clientInfo: pairWithOneBad('client', okString, notString, 'user', okString, notString),
  result: notObject,
  replyError: fc.oneof(
    notObject,
    fc.record({ code: notUint, message: okString, temporary: fc.boolean() }, { noNullPrototype: true }),
    fc.record({ code: fc.nat(), message: notString, temporary: fc.boolean() }, { noNullPrototype: true }),
    fc.record({ code: fc.nat(), message: okString, temporary: notBool }, { noNullPrototype: true }),
    fc.record({ code: fc.nat(), message: okString }, { noNullPrototype: true }),
  ),
}

const DELETE = Symbol('delete')

/** A valid message with one field deleted (if required) or replaced by a value of the wrong kind. */
function brokenMessages(messages: fc.Arbitrary<object>, spec: FieldSpec): fc.Arbitrary<Record<string, unknown>> | undefined {
  const fields: [string, FieldKind, boolean][] = [
    ...Object.entries(spec.required).map(([f, k]): [string, FieldKind, boolean] => [f, k, true]),
    ...Object.entries(spec.optional ?? {}).map(([f, k]): [string, FieldKind, boolean] => [f, k, false]),
  ].filter(([, kind, required]) => required || kind !== 'data')
  if (fields.length === 0) return undefined
  return fc.tuple(messages, fc.constantFrom(...fields)).chain(([msg, [field, kind, required]]) => {
    const changes: fc.Arbitrary<unknown>[] = []
    if (required) changes.push(fc.constant(DELETE))
    if (kind !== 'data') changes.push(wrongValue[kind])
    return fc.oneof(...changes).map((change) => {
      const copy: Record<string, unknown> = { ...msg }
      if (change === DELETE) delete copy[field]
      else copy[field] = change
      return copy
    })
  })
}

describe('messages with missing or wrongly typed fields are bad_request', () => {
  for (const codec of codecs) {
    const a = arbs[codec.name]
    for (const [type, spec] of Object.entries(clientFields) as [ClientMessage['type'], FieldSpec][]) {
      const broken = brokenMessages(a.client[type], spec)
      if (broken === undefined) continue
      test(`${codec.name} client ${type}`, () => {
        fc.assert(
          fc.property(broken, (msg) => {
            expectBadRequest(() => codec.decodeClient(codec.encode(msg as unknown as ClientMessage)))
          }),
          { numRuns: TYPE_RUNS },
        )
      })
    }
    for (const [type, spec] of Object.entries(pushFields) as [PushType, FieldSpec][]) {
      const broken = brokenMessages(a.push[type], spec)
      if (broken === undefined) continue
      test(`${codec.name} push ${type}`, () => {
        fc.assert(
          fc.property(broken, (msg) => {
            expectBadRequest(() => codec.decodeServer(codec.encode(msg as unknown as ServerMessage)))
          }),
          { numRuns: TYPE_RUNS },
        )
      })
    }
    test(`${codec.name} replies`, () => {
      const id = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
      const resultReplies = fc.tuple(id, a.result.connect).map(([i, result]) => ({ id: i, result }))
      const broken = fc.oneof(brokenMessages(resultReplies, replyFields.result)!, brokenMessages(a.errorReply, replyFields.error)!)
      fc.assert(
        fc.property(broken, (msg) => {
          expectBadRequest(() => codec.decodeServer(codec.encode(msg as unknown as ServerMessage)))
        }),
        { numRuns: TYPE_RUNS },
      )
    })
  }

  test('a bad message anywhere in a batch rejects the whole frame', () => {
    const good: ClientMessage = { type: 'pong' }
    for (const codec of codecs) {
      for (let at = 0; at < 4; at++) {
        const parts: Uint8Array[] = [good, good, good, good].map((m) => codec.encode(m))
        // Unknown fields are ignored (a pong with an extra field is still a pong)...
        parts[at] = codec.encode({ type: 'pong', id: 'x' } as unknown as ClientMessage)
        assert.equal(codec.decodeClient(codec.frame(parts)).length, 4)
        // ...but one subscribe without its channel spoils the frame.
        parts[at] = codec.encode({ id: 1, type: 'subscribe' } as unknown as ClientMessage)
        expectBadRequest(() => codec.decodeClient(codec.frame(parts)))
      }
    }
  })
})

describe('unknown message types are bad_request', () => {
  const clientTypes = new Set<string>(Object.keys(clientFields))
  const pushTypes = new Set<string>(Object.keys(pushFields))
  const strange = fc.oneof(
    fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'PING', 'pub ', ''),
    fc.string({ maxLength: 12 }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.string(), { maxLength: 2 }),
    // String() of these throws a TypeError; the validator must not call it.
    fc.constantFrom<unknown>({ toString: 1 }, { toString: 1, valueOf: 1 }, { toString: null, valueOf: null }),
  )
  const extra = fc.dictionary(fc.constantFrom('channel', 'data', 'token', 'epoch', 'offset', 'info', 'x'), fc.jsonValue({ maxDepth: 2 }), { noNullPrototype: true })

  for (const codec of codecs) {
    test(`${codec.name} client`, () => {
      fc.assert(
        fc.property(strange.filter((t) => !(typeof t === 'string' && clientTypes.has(t))), extra, fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }), (type, rest, id) => {
          const msg: Record<string, unknown> = { ...rest, type }
          if (id !== undefined) msg['id'] = id
          expectBadRequest(() => codec.decodeClient(codec.encode(msg as unknown as ClientMessage)))
        }),
        { numRuns: RUNS },
      )
    })
    test(`${codec.name} server push`, () => {
      fc.assert(
        fc.property(strange.filter((t) => !(typeof t === 'string' && pushTypes.has(t))), extra, (type, rest) => {
          expectBadRequest(() => codec.decodeServer(codec.encode({ ...rest, type } as unknown as ServerMessage)))
        }),
        { numRuns: RUNS },
      )
    })
  }

  test('a JSON object whose type has a non-callable toString', () => {
    for (const text of ['{"type":{"toString":1}}', '{"id":1,"type":{"toString":1,"valueOf":1}}', '{"type":{"valueOf":{},"toString":[]}}']) {
      expectBadRequest(() => jsonCodec.decodeClient(text))
      if (!text.includes('"id"')) expectBadRequest(() => jsonCodec.decodeServer(text))
    }
  })
})

// ---------------------------------------------------------------- limits

describe('size and count limits', () => {
  // [name, header]: each declares far more content than any tail this test appends.
  const hugeHeaders: [string, number[]][] = [
    ['str8', [0xd9, 0xff]],
    ['str16', [0xda, 0xff, 0xff]],
    ['str32', [0xdb, 0xff, 0xff, 0xff, 0xff]],
    ['bin8', [0xc4, 0xff]],
    ['bin16', [0xc5, 0xff, 0xff]],
    ['bin32', [0xc6, 0xff, 0xff, 0xff, 0xff]],
    ['array16', [0xdc, 0xff, 0xff]],
    ['array32', [0xdd, 0xff, 0xff, 0xff, 0xff]],
    ['map16', [0xde, 0xff, 0xff]],
    ['map32', [0xdf, 0xff, 0xff, 0xff, 0xff]],
    ['ext8', [0xc7, 0xff, 0x01]],
    ['ext16', [0xc8, 0xff, 0xff, 0x01]],
    ['ext32', [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01]],
  ]
  // A publish whose last value (data) is nil, so its last byte can be swapped for any header.
  const publish = msgpackCodec.encode({ id: 1, type: 'publish', channel: 'c', msgId: 'm', data: null })
  const publishPrefix = publish.subarray(0, -1)

  test('the publish prefix really ends at the data value', () => {
    assert.equal(publish.at(-1), 0xc0)
    const withFalse = Uint8Array.from([...publishPrefix, 0xc2])
    assert.deepEqual(msgpackCodec.decodeClient(withFalse), [{ id: 1, type: 'publish', channel: 'c', msgId: 'm', data: false }])
  })

  for (const [name, header] of hugeHeaders) {
    test(`msgpack ${name} declaring a huge length is refused quickly`, () => {
      for (const frame of [Uint8Array.from(header), Uint8Array.from([...publishPrefix, ...header])]) {
        expectBadRequest(() => msgpackCodec.decodeClient(frame))
        expectBadRequest(() => msgpackCodec.decodeServer(frame))
      }
    })
  }

  test('msgpack huge declared lengths with random surroundings', () => {
    fc.assert(
      fc.property(fc.constantFrom(...hugeHeaders), fc.boolean(), fc.uint8Array({ maxLength: 200 }), ([, header], inData, tail) => {
        const frame = Uint8Array.from([...(inData ? publishPrefix : []), ...header, ...tail])
        expectBadRequest(() => msgpackCodec.decodeClient(frame))
        expectBadRequest(() => msgpackCodec.decodeServer(frame))
      }),
      { numRuns: RUNS },
    )
  })

  test('msgpack small fixed containers with random contents', () => {
    fc.assert(
      fc.property(fc.constantFrom(0x9f, 0x8f, 0xbf, 0x91, 0x81), fc.uint8Array({ maxLength: 64 }), (header, tail) => {
        decodeBothWays(msgpackCodec, Uint8Array.from([...publishPrefix, header, ...tail]))
      }),
      { numRuns: RUNS },
    )
  })

  for (const codec of codecs) {
    test(`${codec.name}: client frames hold at most 100 messages by default, server frames any number`, () => {
      const pongs = (n: number) => codec.frame(Array.from({ length: n }, () => codec.encode({ type: 'pong' })))
      const pings = (n: number) => codec.frame(Array.from({ length: n }, () => codec.encode({ type: 'ping' })))
      assert.equal(codec.decodeClient(pongs(100)).length, 100)
      assert.match(expectBadRequest(() => codec.decodeClient(pongs(101))).message, /more than 100/)
      expectBadRequest(() => codec.decodeClient(pongs(10_000)))
      assert.equal(codec.decodeServer(pings(101)).length, 101)
      assert.equal(codec.decodeServer(pings(10_000)).length, 10_000)
    })

    test(`${codec.name}: a custom maxBatch is honoured exactly on both sides`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 60 }), (maxBatch, count) => {
          const commands = codec.frame(Array.from({ length: count }, (_, i) => codec.encode({ id: i + 1, type: 'ping' })))
          const pushes = codec.frame(Array.from({ length: count }, () => codec.encode({ type: 'ping' })))
          for (const outcome of [attempt(() => codec.decodeClient(commands, { maxBatch })), attempt(() => codec.decodeServer(pushes, { maxBatch }))]) {
            assert.equal(outcome.ok, count <= maxBatch)
            if (outcome.ok) assert.equal(outcome.messages.length, count)
          }
        }),
        { numRuns: 300 },
      )
    })
  }

  test('empty frames are bad_request', () => {
    const empties: FrameData[] = ['', '\n', '\n\n\n', new Uint8Array(0), new ArrayBuffer(0), Uint8Array.from([0x0a])]
    for (const frame of empties) {
      assert.match(expectBadRequest(() => jsonCodec.decodeClient(frame)).message, /empty/)
      expectBadRequest(() => jsonCodec.decodeServer(frame))
    }
    for (const frame of [new Uint8Array(0), new ArrayBuffer(0)]) {
      assert.match(expectBadRequest(() => msgpackCodec.decodeClient(frame)).message, /empty/)
      expectBadRequest(() => msgpackCodec.decodeServer(frame))
    }
    expectBadRequest(() => msgpackCodec.decodeClient(''))
    expectBadRequest(() => jsonCodec.decodeClient(' '))
  })

  test('JSON ignores blank lines between messages', () => {
    assert.deepEqual(jsonCodec.decodeClient('\n{"type":"pong"}\n\n{"id":3,"type":"ping"}\n'), [{ type: 'pong' }, { id: 3, type: 'ping' }])
  })

  test('JSON that is not UTF-8 is bad_request', () => {
    for (const bytes of [[0xff], [0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d], [0xed, 0xa0, 0x80]]) {
      assert.match(expectBadRequest(() => jsonCodec.decodeClient(Uint8Array.from(bytes))).message, /UTF-8/)
    }
  })

  test('deeply nested data', () => {
    const depth = 100_000
    const arrays = '['.repeat(depth) + ']'.repeat(depth)
    const objects = '{"a":'.repeat(depth) + '0' + '}'.repeat(depth)
    for (const nested of [arrays, objects]) {
      const outcome = attempt(() => jsonCodec.decodeClient(`{"id":1,"type":"publish","channel":"c","msgId":"m","data":${nested}}`))
      if (outcome.ok) assert.equal(outcome.messages[0]?.type, 'publish')
      attempt(() => jsonCodec.decodeServer(`{"id":1,"result":{"data":${nested}}}`))
      // Nested values are never messages.
      expectBadRequest(() => jsonCodec.decodeClient(nested))
    }
    const deepMsgpack = Uint8Array.from([...publishPrefix, ...new Uint8Array(depth).fill(0x91), 0xc0])
    const outcome = attempt(() => msgpackCodec.decodeClient(deepMsgpack))
    if (outcome.ok) assert.equal(outcome.messages[0]?.type, 'publish')
    expectBadRequest(() => msgpackCodec.decodeClient(Uint8Array.from([...new Uint8Array(depth).fill(0x91), 0xc0])))
  })
})

// ---------------------------------------------------------------- prototype pollution

describe('__proto__ keys', () => {
  test('client frames holding a __proto__ key anywhere are refused, in both codecs', () => {
    const texts = [
      '{"type":"pong","__proto__":{"polluted":"yes"}}',
      '{"id":1,"type":"publish","channel":"c","msgId":"m","data":{"__proto__":{"isAdmin":true}}}',
      '{"id":1,"type":"publish","channel":"c","msgId":"m","data":[1,{"a":[{"__proto__":0}]}]}',
      // The same key spelled with escapes.
      '{"id":1,"type":"publish","channel":"c","msgId":"m","data":{"\\u005f_proto__":1}}',
      '{"id":1,"type":"rpc","method":"m","msgId":"m","data":{"x":{"__prot\\u006f__":null}}}',
    ]
    for (const text of texts) {
      assert.match(expectBadRequest(() => jsonCodec.decodeClient(text)).message, /__proto__/)
      expectBadRequest(() => jsonCodec.decodeClient(`{"type":"pong"}\n${text}`))
      expectBadRequest(() => msgpackCodec.decodeClient(msgpackCodec.encode(JSON.parse(text) as ClientMessage)))
    }
    // Lookalikes are ordinary keys.
    const fine = '{"id":1,"type":"publish","channel":"c","msgId":"m","data":{"__proto_":1,"_proto__":2,"__PROTO__":3,"\\u00e9":"__proto__","constructor":{"prototype":{"polluted":1}}}}'
    for (const codec of codecs) {
      const frame = codec === jsonCodec ? fine : msgpackCodec.encode(JSON.parse(fine) as ClientMessage)
      const [msg] = codec.decodeClient(frame)
      assert.ok(msg !== undefined && msg.type === 'publish')
      assert.deepEqual(msg.data, { __proto_: 1, _proto__: 2, __PROTO__: 3, 'é': '__proto__', constructor: { prototype: { polluted: 1 } } })
    }
    assertPrototypeClean()
  })

  test('JSON server frames carry a __proto__ key as plain data and pollute nothing', () => {
    const text = '{"type":"message","data":{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"polluted":1}}}}'
    const [msg] = jsonCodec.decodeServer(text)
    assert.ok(msg !== undefined && !('id' in msg) && msg.type === 'message')
    const data = msg.data as Record<string, unknown>
    assert.equal(Object.getPrototypeOf(data), Object.prototype)
    assert.equal(data['isAdmin'], undefined)
    assert.ok(Object.hasOwn(data, '__proto__'))
    assert.deepEqual(jsonCodec.decodeServer(jsonCodec.encode(msg)), [msg])
    assertPrototypeClean()
  })

  test('a __proto__ key cannot supply the fields of a message', () => {
    expectBadRequest(() => jsonCodec.decodeServer('{"__proto__":{"type":"ping"}}'))
    expectBadRequest(() => jsonCodec.decodeServer('{"id":1,"__proto__":{"result":{}}}'))
    expectBadRequest(() => jsonCodec.decodeServer('{"type":"disconnect","__proto__":{"code":4000,"reason":"r"}}'))
    for (const text of ['{"__proto__":{"type":"pong"}}', '{"type":"unsubscribe","id":1,"__proto__":{"channel":"c"}}']) {
      expectBadRequest(() => jsonCodec.decodeClient(text))
      expectBadRequest(() => msgpackCodec.decodeClient(msgpackCodec.encode(JSON.parse(text) as ClientMessage)))
    }
    assertPrototypeClean()
  })

  // A tree of [key, value] pairs written out as JSON text, so that keys like __proto__ end up as
  // own properties after JSON.parse, as they would arriving from a hostile client.
  const key = fc.constantFrom('__proto__', 'constructor', 'prototype', 'polluted', 'isAdmin', 'type', 'toString', 'a')
  type Tree = string | number | Tree[] | { pairs: [string, Tree][] }
  const tree = fc.letrec<{ node: Tree }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      fc.constant('yes'),
      fc.integer(),
      fc.array(tie('node'), { maxLength: 3 }),
      fc.array(fc.tuple(key, tie('node')), { maxLength: 4 }).map((pairs) => ({ pairs })),
    ),
  })).node
  const toJson = (node: Tree): string =>
    Array.isArray(node)
      ? `[${node.map(toJson).join(',')}]`
      : typeof node === 'object'
        ? `{${node.pairs.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(',')}}`
        : JSON.stringify(node)

  test('random objects with prototype-ish keys, both codecs', () => {
    fc.assert(
      fc.property(tree, fc.boolean(), (node, asMessage) => {
        const json = asMessage ? `{"id":1,"type":"publish","channel":"c","msgId":"m","data":${toJson(node)}}` : toJson(node)
        const parsed: unknown = JSON.parse(json)
        const outcome = attempt(() => jsonCodec.decodeClient(json))
        checkAccepted(outcome, validateClientMessage, CLIENT_MAX_BATCH)
        // (A repeated key keeps its last value only, so look at the parsed value, not the tree.)
        if (hasProtoKey(parsed)) assert.equal(outcome.ok, false, 'a client frame with a __proto__ key was accepted')
        else if (asMessage) assert.equal(outcome.ok, true)
        checkAccepted(attempt(() => jsonCodec.decodeServer(json)), validateServerMessage, Number.POSITIVE_INFINITY)
        checkAccepted(attempt(() => msgpackCodec.decodeClient(msgpackCodec.encode(parsed as ClientMessage))), validateClientMessage, CLIENT_MAX_BATCH)
        checkAccepted(attempt(() => msgpackCodec.decodeServer(msgpackCodec.encode(parsed as ServerMessage))), validateServerMessage, Number.POSITIVE_INFINITY)
        assertPrototypeClean()
      }),
      { numRuns: RUNS },
    )
  })

  test('whatever a client may publish, a subscriber of either codec can decode', () => {
    // The server relays a publish's data to subscribers that may speak the other encoding; a value
    // one decoder accepts from a client but the other refuses from the server would wedge those
    // subscribers (every recovery would replay it).
    const data = fc.oneof(fc.jsonValue(), tree.map((node) => JSON.parse(toJson(node)) as unknown))
    fc.assert(
      fc.property(data, fc.constantFrom(...codecs), (value, from) => {
        const text = `{"id":1,"type":"publish","channel":"c","msgId":"m","data":${JSON.stringify(value)}}`
        const frame = from === jsonCodec ? text : msgpackCodec.encode(JSON.parse(text) as ClientMessage)
        const outcome = attempt(() => from.decodeClient(frame))
        if (!outcome.ok) return
        const [msg] = outcome.messages
        assert.ok(msg !== undefined && msg.type === 'publish')
        const pub: ServerMessage = { type: 'pub', channel: msg.channel, epoch: 'e', offset: 1, data: msg.data }
        for (const to of codecs) {
          const relayed = attempt(() => to.decodeServer(to.encode(pub)))
          assert.ok(relayed.ok, `${from.name} client data cannot reach a ${to.name} subscriber`)
        }
      }),
      { numRuns: RUNS },
    )
  })

  test('msgpack: a map with a __proto__ key is refused, never turned into a prototype', () => {
    const frames = [
      msgpackCodec.encode(JSON.parse('{"id":1,"type":"publish","channel":"c","msgId":"m","data":{"__proto__":{"isAdmin":true}}}') as ClientMessage),
      msgpackCodec.encode(JSON.parse('{"type":"message","data":{"__proto__":{"isAdmin":true}}}') as ServerMessage),
    ]
    for (const frame of frames) {
      expectBadRequest(() => msgpackCodec.decodeClient(frame))
      expectBadRequest(() => msgpackCodec.decodeServer(frame))
    }
    assertPrototypeClean()
  })
})
