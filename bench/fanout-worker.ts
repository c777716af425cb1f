/**
 * A client process of bench/fanout-nodes.ts: holds a share of the subscribers (raw protocol over
 * `ws`, JSON, from its own source address 127.0.0.x) and measures what they receive. Forked by the
 * bench with an IPC channel; not meant to be run by hand.
 *
 * Cheap on purpose, so that the clients measure the servers rather than themselves: a node encodes
 * a publication once and writes the same bytes to each of its subscribers, so a frame equal to the
 * previous one is not parsed again (a memcmp instead of a JSON.parse per delivery).
 */
import { WebSocket } from 'ws'

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes of one machine. */
export const wallNow = (): number => performance.timeOrigin + performance.now()

export type ToWorker =
  | { type: 'connect'; urls: string[]; count: number; localAddress: string; channel: string; concurrency: number }
  | { type: 'measure'; channel: string; publications: number }
  | { type: 'status' }
  | { type: 'report' }
  | { type: 'close' }

export type FromWorker =
  | { type: 'connected'; connected: number; failed: number; firstError: string | undefined; ms: number }
  | { type: 'status'; delivered: number; warmUp: number }
  | {
      type: 'report'
      /** Publish-to-delivery latency of every delivery of a measured publication, in ms. */
      latencies: Float64Array
      delivered: number
      duplicates: number
      /** Publications a subscriber had not received when the report was asked for. */
      gaps: number
      /** Subscribers whose connection closed during the measurement (slow consumer, node gone...). */
      closed: number
      /** Per publication (index = seq): wall time of its last delivery here, 0 if none. */
      lastDeliveryAt: Float64Array
      /** Per publication (index = seq): deliveries here, duplicates included. */
      deliveries: Uint32Array
    }
  | { type: 'closed' }

interface Sub {
  ws: WebSocket
  /** Highest measured seq delivered (order and duplicate check). */
  last: number
}

const subs: Sub[] = []
/** The scenario's channel (from connect). */
let channelName = ''
/** Measuring: publications with seq > 0 are recorded. */
let measuredChannel = ''
/** Deliveries of warm-up publications (seq 0): the bench waits for them all before measuring. */
let warmUp = 0
let publications = 0
let latencies = new Float64Array(0)
let count = 0
let delivered = 0
let duplicates = 0
let gaps = 0
let closed = 0
let lastDeliveryAt = new Float64Array(0)
let perSeq = new Uint32Array(0)
/** The previous frame and what was found in it, for the cache described above. */
let prevFrame: Buffer | undefined
let prevPubs: { seq: number; t: number }[] = []

function send(msg: FromWorker): void {
  process.send?.(msg)
}

/** The measured publications in a frame (one message per line); answers pings on `ws`. */
function parseFrame(frame: Buffer, ws: WebSocket): { seq: number; t: number }[] {
  const out: { seq: number; t: number }[] = []
  for (const line of frame.toString('utf8').split('\n')) {
    if (line.length === 0) continue
    const msg = JSON.parse(line) as { type?: string; channel?: string; data?: { seq?: number; t?: number } }
    if (msg.type === 'ping') ws.send('{"type":"pong"}')
    else if (msg.type === 'pub' && msg.channel === channelName && typeof msg.data?.seq === 'number') {
      out.push({ seq: msg.data.seq, t: msg.data.t ?? 0 })
    }
  }
  return out
}

function onFrame(sub: Sub, frame: Buffer): void {
  const now = wallNow()
  let pubs: { seq: number; t: number }[]
  if (prevFrame !== undefined && frame.equals(prevFrame)) pubs = prevPubs
  else {
    pubs = parseFrame(frame, sub.ws)
    // A frame with a ping in it must be answered by each connection: never cache those.
    if (!frame.includes('"ping"')) {
      prevFrame = Buffer.from(frame)
      prevPubs = pubs
    } else prevFrame = undefined
  }
  for (const p of pubs) {
    if (p.seq === 0) {
      warmUp++
      continue
    }
    if (measuredChannel === '' || p.seq > publications) continue
    if (p.seq <= sub.last) duplicates++
    else {
      if (p.seq > sub.last + 1) gaps += p.seq - sub.last - 1
      sub.last = p.seq
    }
    delivered++
    if (count === latencies.length) {
      const bigger = new Float64Array(Math.max(1024, latencies.length * 2))
      bigger.set(latencies)
      latencies = bigger
    }
    latencies[count++] = now - p.t
    perSeq[p.seq] = (perSeq[p.seq] ?? 0) + 1
    if (now > (lastDeliveryAt[p.seq] ?? 0)) lastDeliveryAt[p.seq] = now
  }
}

/** Open one subscriber: WebSocket, connect, subscribe. Resolves when subscribed. */
function openSub(url: string, localAddress: string, channel: string): Promise<Sub> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['holdfast.v1.json'], { localAddress, perMessageDeflate: false })
    const sub: Sub = { ws, last: 0 }
    const timer = setTimeout(() => fail(new Error('not subscribed within 30 s')), 30_000)
    let state: 'connecting' | 'subscribing' | 'live' = 'connecting'
    function fail(err: Error): void {
      clearTimeout(timer)
      ws.terminate()
      reject(err)
    }
    ws.on('open', () => ws.send('{"id":1,"type":"connect","version":1}'))
    ws.on('message', (data: Buffer) => {
      if (state === 'live') return onFrame(sub, data)
      for (const line of data.toString('utf8').split('\n')) {
        if (line.length === 0) continue
        const msg = JSON.parse(line) as { id?: number; error?: unknown; type?: string }
        if (msg.type === 'ping') ws.send('{"type":"pong"}')
        if (msg.error !== undefined) return fail(new Error(`refused: ${JSON.stringify(msg.error)}`))
        if (msg.id === 1 && state === 'connecting') {
          state = 'subscribing'
          ws.send(JSON.stringify({ id: 2, type: 'subscribe', channel }))
        } else if (msg.id === 2 && state === 'subscribing') {
          state = 'live'
          clearTimeout(timer)
          resolve(sub)
        }
      }
    })
    ws.on('error', (err) => fail(err))
    ws.on('close', (code) => {
      if (state !== 'live') fail(new Error(`closed with ${code} before subscribing`))
      else if (measuredChannel !== '') closed++
    })
  })
}

async function connectAll(m: Extract<ToWorker, { type: 'connect' }>): Promise<void> {
  const start = performance.now()
  let next = 0
  let failed = 0
  let firstError: string | undefined
  // Spread over the nodes in turn, `concurrency` handshakes in flight at a time.
  const lane = async (): Promise<void> => {
    while (next < m.count) {
      const i = next++
      try {
        subs.push(await openSub(m.urls[i % m.urls.length] as string, m.localAddress, m.channel))
      } catch (err) {
        failed++
        firstError ??= (err as Error).message
      }
    }
  }
  await Promise.all(Array.from({ length: m.concurrency }, lane))
  send({ type: 'connected', connected: subs.length, failed, firstError, ms: performance.now() - start })
}

process.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'connect':
      channelName = m.channel
      warmUp = 0
      void connectAll(m)
      return
    case 'measure':
      measuredChannel = m.channel
      publications = m.publications
      latencies = new Float64Array(subs.length * m.publications)
      count = 0
      delivered = 0
      duplicates = 0
      gaps = 0
      closed = 0
      lastDeliveryAt = new Float64Array(m.publications + 1)
      perSeq = new Uint32Array(m.publications + 1)
      prevFrame = undefined
      for (const s of subs) s.last = 0
      return
    case 'status':
      send({ type: 'status', delivered, warmUp })
      return
    case 'report':
      // What never arrived is a gap at the end: count it too.
      for (const s of subs) gaps += publications - s.last
      send({ type: 'report', latencies: latencies.subarray(0, count), delivered, duplicates, gaps, closed, lastDeliveryAt, deliveries: perSeq })
      return
    case 'close':
      measuredChannel = ''
      for (const s of subs) s.ws.terminate()
      subs.length = 0
      send({ type: 'closed' })
      return
  }
})
process.on('disconnect', () => process.exit(0))
