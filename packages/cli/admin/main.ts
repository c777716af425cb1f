// The admin dashboard served by `holdfast serve --admin-secret` at `/admin` (after the login).
// Bundled by scripts/build-demo.mjs into public/admin/admin.js. Live numbers come over holdfast
// itself: the page connects as the reserved admin user and subscribes to the stats channel that
// every node publishes to each second; actions are small POSTs to /admin/api.
import { HoldfastClient, type ConnectionState } from '@holdfast/client'
import type { TokenResponse } from '../src/admin/feed.js'
import { api } from './api.js'
import { LiveChart, type Series } from './chart.js'
import { Fleet, parseStats } from './fleet.js'
import { colorOf, renderChannels, renderNodes, renderPresence } from './views.js'

/** Samples fetched from the channel's history when the page opens: the last two minutes of a few nodes. */
const HISTORY_LIMIT = 600
const NODES_EVERY_MS = 5000

function byId<T extends Element>(id: string, type: { new (): T; prototype: T }): T {
  const node = document.getElementById(id)
  if (!(node instanceof type)) throw new Error(`admin: #${id} is missing from index.html`)
  return node
}

const ui = {
  boot: byId('boot', HTMLElement),
  feed: byId('feed', HTMLElement),
  feedLabel: byId('feed-label', HTMLElement),
  feedError: byId('feed-error', HTMLElement),
  nodeCount: byId('node-count', HTMLElement),
  totalConnections: byId('total-connections', HTMLElement),
  totalIn: byId('total-in', HTMLElement),
  totalOut: byId('total-out', HTMLElement),
  chartConnections: new LiveChart(byId('chart-connections', HTMLElement)),
  chartMessages: new LiveChart(byId('chart-messages', HTMLElement)),
  chartSpan: byId('chart-span', HTMLElement),
  nodesBody: byId('nodes-body', HTMLTableSectionElement),
  channelsBody: byId('channels-body', HTMLTableSectionElement),
  channelsEmpty: byId('channels-empty', HTMLElement),
  presenceForm: byId('presence-form', HTMLFormElement),
  presenceChannel: byId('presence-channel', HTMLInputElement),
  presenceStatus: byId('presence-status', HTMLElement),
  presenceList: byId('presence-list', HTMLUListElement),
  publishForm: byId('publish-form', HTMLFormElement),
  publishChannel: byId('publish-channel', HTMLInputElement),
  publishData: byId('publish-data', HTMLTextAreaElement),
  publishResult: byId('publish-result', HTMLElement),
  disconnectForm: byId('disconnect-form', HTMLFormElement),
  disconnectKind: byId('disconnect-kind', HTMLSelectElement),
  disconnectId: byId('disconnect-id', HTMLInputElement),
  disconnectResult: byId('disconnect-result', HTMLElement),
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))

function showResult(node: HTMLElement, ok: boolean, text: string): void {
  node.textContent = text
  node.className = `result ${ok ? 'ok' : 'error'}`
}

function showFeedError(text: string | null): void {
  ui.feedError.hidden = text === null
  ui.feedError.textContent = text ?? ''
}

// ------------------------------------------------------------------ rendering

const fleet = new Fleet()
let renderQueued = false

function render(): void {
  renderQueued = false
  const now = Date.now()
  fleet.prune(now)
  const ids = fleet.ids()
  const colors = new Map(ids.map((id, i) => [id, colorOf(i)]))
  // The newest sample is "now" on the time axis: node clocks, not the browser's, stamp the samples.
  let end = 0
  for (const id of ids) end = Math.max(end, fleet.samples(id).at(-1)?.at ?? 0)
  if (end === 0) end = now
  const conns: Series[] = []
  const msgs: Series[] = []
  for (const id of ids) {
    const samples = fleet.samples(id)
    const color = colors.get(id) as string
    conns.push({ label: id, color, points: samples.map((s) => [s.at, s.connections] as const) })
    msgs.push({ label: `${id} in`, color, points: samples.map((s) => [s.at, s.messagesInPerSec] as const) })
    msgs.push({ label: `${id} out`, color, dashed: true, points: samples.map((s) => [s.at, s.messagesOutPerSec] as const) })
  }
  const windowMs = fleet.window(end)
  ui.chartConnections.draw(conns, end, windowMs)
  ui.chartMessages.draw(msgs, end, windowMs)
  ui.chartSpan.textContent = `last ${windowMs / 1000} s`

  const totals = fleet.totals(now)
  ui.nodeCount.textContent = String(ids.length)
  ui.totalConnections.textContent = String(totals.connections)
  ui.totalIn.textContent = String(totals.inPerSec)
  ui.totalOut.textContent = String(totals.outPerSec)
  renderNodes(ui.nodesBody, fleet.rows(now), colors, now)
  const channels = fleet.channels(now)
  renderChannels(ui.channelsBody, channels, pickChannel)
  ui.channelsEmpty.hidden = channels.length > 0
}

function scheduleRender(): void {
  if (renderQueued) return
  renderQueued = true
  // One redraw per frame however many nodes report in it; a timer, not requestAnimationFrame,
  // so that a dashboard in a background tab is current the moment it is looked at.
  setTimeout(render, 50)
}

function pickChannel(channel: string): void {
  ui.presenceChannel.value = channel
  ui.publishChannel.value = channel
  void showPresence(channel)
}

// ------------------------------------------------------------------ the live feed

const FEED_LABELS: Readonly<Record<ConnectionState, [state: string, label: string]>> = {
  connected: ['live', 'live'],
  connecting: ['connecting', 'connecting…'],
  disconnected: ['reconnecting', 'reconnecting…'],
  closed: ['offline', 'offline'],
}

function setFeed(state: ConnectionState, reason?: string): void {
  const [s, label] = FEED_LABELS[state]
  ui.feed.dataset['state'] = s
  ui.feedLabel.textContent = state === 'closed' && reason !== undefined ? `${label}: ${reason}` : label
}

async function backfill(client: HoldfastClient, channel: string): Promise<void> {
  try {
    const page = await client.history(channel, { limit: HISTORY_LIMIT })
    const now = Date.now()
    const samples = page.publications.map((p) => parseStats(p.data)).filter((s) => s !== undefined)
    const newest = Math.max(...samples.map((s) => s.at))
    // A sample's age counts from the newest one (node clocks): a node whose last word is a minute
    // old in the history shows as silent, not as up.
    for (const s of samples) fleet.add(s, now - (newest - s.at))
    scheduleRender()
  } catch (err) {
    // Only the charts' past is missing; live samples keep coming.
    console.warn(`admin: no stats history: ${messageOf(err)}`)
  }
}

async function startFeed(): Promise<void> {
  let first: TokenResponse
  try {
    first = await api.token()
  } catch (err) {
    showFeedError(`The live feed is unavailable: ${messageOf(err)}. Retrying…`)
    setTimeout(() => void startFeed(), 5000)
    return
  }
  const wsUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${first.wsPath}`
  // getToken: a fresh short-lived token before this one expires, and after any unauthorized close.
  const client = new HoldfastClient(wsUrl, { token: first.token, getToken: async () => (await api.token()).token, name: 'holdfast-admin' })
  client.on('state', ({ to, reason }) => {
    setFeed(to, reason.message)
    if (to === 'connected') showFeedError(null)
  })
  client.on('error', (err) => console.warn(`admin feed: ${err.code}: ${err.message}`))
  const sub = client.subscribe(first.channel)
  sub.on('publication', ({ data }) => {
    const s = parseStats(data)
    if (s === undefined) return
    fleet.add(s, Date.now())
    scheduleRender()
  })
  // Not recovered (first subscribe, or the stream lost its history): draw the recent past from history.
  sub.on('subscribed', ({ recovered }) => {
    if (!recovered) void backfill(client, first.channel)
  })
  sub.on('unsubscribed', ({ error }) => {
    if (error !== undefined) showFeedError(`Cannot follow the stats channel: ${error.message}`)
  })
  client.connect()
}

async function refreshNodes(): Promise<void> {
  try {
    fleet.setRegistry((await api.nodes()).nodes)
    scheduleRender()
  } catch (err) {
    console.warn(`admin: node list: ${messageOf(err)}`)
  }
}

// ------------------------------------------------------------------ actions

/** The channel whose presence is on screen; it is refreshed every few seconds while shown. */
let presenceShown: string | undefined
const PRESENCE_REFRESH_MS = 2000
setInterval(() => {
  if (presenceShown !== undefined && document.visibilityState === 'visible') void showPresence(presenceShown, true)
}, PRESENCE_REFRESH_MS)

async function showPresence(channel: string, refresh = false): Promise<void> {
  presenceShown = channel
  if (!refresh) {
    ui.presenceStatus.textContent = `Loading ${channel}…`
    ui.presenceStatus.className = 'muted'
  }
  try {
    const r = await api.presence(channel)
    renderPresence(ui.presenceList, r.clients)
    ui.presenceStatus.textContent =
      r.clients.length === 0
        ? `Nobody is present in ${r.channel} (presence must be enabled for its namespace).`
        : `${r.clients.length} connection${r.clients.length === 1 ? '' : 's'} present in ${r.channel}:`
  } catch (err) {
    renderPresence(ui.presenceList, [])
    ui.presenceStatus.textContent = messageOf(err)
    ui.presenceStatus.className = 'error'
  }
}

ui.presenceForm.addEventListener('submit', (e) => {
  e.preventDefault()
  const channel = ui.presenceChannel.value.trim()
  if (channel !== '') void showPresence(channel)
})

ui.publishForm.addEventListener('submit', (e) => {
  e.preventDefault()
  const channel = ui.publishChannel.value.trim()
  let data: unknown
  try {
    data = JSON.parse(ui.publishData.value)
  } catch {
    showResult(ui.publishResult, false, 'The data must be JSON (a text needs quotes: "hello").')
    return
  }
  api.publish(channel, data).then(
    (r) => showResult(ui.publishResult, true, `Published to ${r.channel} at offset ${r.offset}.`),
    (err: unknown) => showResult(ui.publishResult, false, messageOf(err)),
  )
})

ui.disconnectForm.addEventListener('submit', (e) => {
  e.preventDefault()
  const id = ui.disconnectId.value.trim()
  const kind = ui.disconnectKind.value === 'client' ? 'client' : 'user'
  if (id === '') return
  api.disconnect(kind === 'user' ? { user: id } : { client: id }).then(
    () => {
      showResult(ui.disconnectResult, true, `Disconnected ${kind === 'user' ? 'user' : 'connection'} ${id} on every node.`)
      // The presence shown may list who just left; the engine drops them at once.
      const channel = ui.presenceChannel.value.trim()
      if (channel !== '' && ui.presenceList.childElementCount > 0) setTimeout(() => void showPresence(channel), 300)
    },
    (err: unknown) => showResult(ui.disconnectResult, false, messageOf(err)),
  )
})

// ------------------------------------------------------------------ start

ui.boot.hidden = true
setFeed('connecting')
render()
void startFeed()
void refreshNodes()
setInterval(() => void refreshNodes(), NODES_EVERY_MS)
// Staleness ("silent" nodes, the time axis) moves even when no sample arrives.
setInterval(render, 1000)
