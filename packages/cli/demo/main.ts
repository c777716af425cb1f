// The chat demo served by `holdfast serve` at `/`. Bundled by scripts/build-demo.mjs into
// public/demo.js; everything it shows comes from the public API of @holdfast/client.
import { HoldfastClient, type Subscription } from '@holdfast/client'
import { ConnectionIndicator } from './indicator.js'
import { MessageList, parseChatMessage, type ChatMessage } from './message-list.js'

/**
 * How long a message may wait in the offline queue. Shorter than the server's dedupe window
 * (5 minutes by default), so a resend after a long outage is still recognised as the same message.
 */
const PUBLISH_TIMEOUT_MS = 120_000
const HISTORY_LIMIT = 100

function byId<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const node = document.getElementById(id)
  if (!(node instanceof type)) throw new Error(`demo: #${id} is missing from index.html`)
  return node
}

const ui = {
  boot: byId('boot', HTMLElement),
  conn: byId('conn', HTMLElement),
  connLabel: byId('conn-label', HTMLElement),
  retry: byId('retry', HTMLButtonElement),
  queuePill: byId('queue', HTMLElement),
  queued: byId('queued', HTMLElement),
  joinForm: byId('join', HTMLFormElement),
  name: byId('name', HTMLInputElement),
  room: byId('room', HTMLInputElement),
  chat: byId('chat', HTMLElement),
  roomTitle: byId('room-title', HTMLElement),
  me: byId('me', HTMLElement),
  subState: byId('sub-state', HTMLElement),
  notice: byId('notice', HTMLElement),
  noticeClose: byId('notice-close', HTMLButtonElement),
  chatError: byId('chat-error', HTMLElement),
  messages: byId('messages', HTMLOListElement),
  pending: byId('pending', HTMLOListElement),
  compose: byId('compose', HTMLFormElement),
  text: byId('text', HTMLInputElement),
}

/** A message id that works outside secure contexts too (`crypto.randomUUID` does not). */
function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function showError(text: string | null): void {
  ui.chatError.hidden = text === null
  ui.chatError.textContent = text ?? ''
}

const wsUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`
const client = new HoldfastClient(wsUrl, { protocol: 'json' })
const list = new MessageList(ui.messages, ui.pending)
new ConnectionIndicator(client, ui.conn, ui.connLabel, ui.retry)

// Publishes (and history calls) that wait for the server's ack: queued while offline, then resent.
client.on('queue', ({ size }) => {
  ui.queued.textContent = String(size)
  ui.queuePill.dataset['queued'] = String(size)
})
// Connection errors are expected while the server is away; the indicator already tells the story.
client.on('error', (err) => console.warn(`holdfast: ${err.code}: ${err.message}`))

interface Room {
  name: string
  channel: string
  sub: Subscription
}
let room: Room | undefined

function renderSubState(): void {
  const state = room === undefined ? 'unsubscribed' : room.sub.state
  ui.chat.dataset['subState'] = state
  ui.subState.textContent = state === 'subscribed' ? 'joined' : state === 'subscribing' ? 'joining…' : 'left'
}
client.on('state', renderSubState)

/** Load the latest publications: after a first join, and after the server said it lost our place. */
async function reload(r: Room): Promise<void> {
  try {
    const history = await client.history(r.channel, { limit: HISTORY_LIMIT })
    if (room !== r) return
    for (const pub of history.publications) {
      const msg = parseChatMessage(pub.data)
      if (msg !== undefined) list.add(history.epoch, pub.offset, msg)
    }
  } catch (err) {
    if (room === r) showError(`could not load the history: ${messageOf(err)}`)
  }
}

function join(name: string, roomName: string): void {
  room?.sub.unsubscribe()
  list.clear()
  ui.notice.hidden = true
  showError(null)
  const channel = `chat:${roomName}`
  const r: Room = { name, channel, sub: client.subscribe(channel) }
  room = r
  r.sub.on('publication', ({ epoch, offset, data }) => {
    const msg = parseChatMessage(data)
    if (msg !== undefined) list.add(epoch, offset, msg)
  })
  r.sub.on('subscribed', ({ recovered, wasRecovering }) => {
    renderSubState()
    // recovered: the SDK replays what was missed as ordinary publications; nothing to do.
    if (recovered) return
    if (wasRecovering) ui.notice.hidden = false
    void reload(r)
  })
  r.sub.on('unsubscribed', ({ error }) => {
    if (room !== r) return
    renderSubState()
    if (error !== undefined) showError(`cannot join ${channel}: ${error.message}`)
  })
  // Refusals end in `unsubscribed` (shown above); retried ones are only worth a console line.
  r.sub.on('error', (err) => console.warn(`holdfast ${channel}: ${err.code}: ${err.message}`))
  ui.roomTitle.textContent = `#${roomName}`
  ui.me.textContent = name
  ui.chat.hidden = false
  renderSubState()
  ui.text.focus()
}

ui.joinForm.addEventListener('submit', (e) => {
  e.preventDefault()
  const name = ui.name.value.trim()
  const roomName = ui.room.value.trim()
  if (name === '' || roomName === '' || !ui.joinForm.reportValidity()) return
  join(name, roomName)
})

ui.compose.addEventListener('submit', (e) => {
  e.preventDefault()
  const text = ui.text.value.trim()
  const r = room
  if (text === '' || r === undefined) return
  const msg: ChatMessage = { id: newId(), name: r.name, text, at: Date.now() }
  const line = list.addPending(msg)
  ui.text.value = ''
  client.publish(r.channel, msg, { timeoutMs: PUBLISH_TIMEOUT_MS }).then(
    () => line.acked(),
    (err: unknown) => line.failed(messageOf(err)),
  )
})

ui.noticeClose.addEventListener('click', () => {
  ui.notice.hidden = true
})

ui.boot.hidden = true
ui.joinForm.hidden = false
ui.name.focus()
client.connect()
