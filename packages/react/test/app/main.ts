// A small chat app on @holdfast/react, bundled by the test with esbuild (React 18 or 19,
// development build, so StrictMode runs every effect twice): connection state, two lists of the
// same channel, a composer whose publishes show queued/acked (restored ones too, after a reload),
// and who is present. `?ws=<url>&db=<IndexedDB name>`.
import { HoldfastClient, indexedDbStorage } from '@holdfast/client'
import { createElement as h, StrictMode, useEffect, useState, version } from 'react'
import { createRoot } from 'react-dom/client'
import { HoldfastProvider, useConnectionState, usePresence, usePublish, useSubscription } from '@holdfast/react'

const CHANNEL = 'chat:room'
const q = new URLSearchParams(location.search)
const client = new HoldfastClient(q.get('ws') ?? '', {
  storage: indexedDbStorage(q.get('db') ?? 'react-app'),
  commandTimeoutMs: 120_000,
  minReconnectDelayMs: 50,
  maxReconnectDelayMs: 300,
})
;(window as unknown as { __client: HoldfastClient }).__client = client

/** Counts effect mounts: StrictMode (development) mounts every effect twice. */
;(window as unknown as { __mounts: number }).__mounts = 0
function Probe() {
  useEffect(() => {
    ;(window as unknown as { __mounts: number }).__mounts++
  }, [])
  return null
}

function Status() {
  return h('p', { id: 'state' }, useConnectionState())
}

function Messages({ id }: { id: string }) {
  const { publications, status } = useSubscription<{ text: string }>(CHANNEL)
  return h('ul', { id, 'data-status': status }, ...publications.map((p) => h('li', { key: p.offset }, `${p.offset}: ${p.data.text}`)))
}

function Composer() {
  const { publish, entries } = usePublish<{ text: string }>(CHANNEL)
  const [n, setN] = useState(1)
  const send = () => {
    void publish({ text: `message ${n}` }).catch(() => {})
    setN(n + 1)
  }
  return h(
    'div',
    null,
    h('button', { id: 'send', onClick: send }, 'send'),
    h('ul', { id: 'outbox' }, ...entries.map((e) => h('li', { key: e.key, 'data-status': e.status }, `${e.data.text} ${e.status}${e.restored ? ' restored' : ''}${e.offset === undefined ? '' : ` @${e.offset}`}`))),
  )
}

function Who() {
  const { clients, ready } = usePresence(CHANNEL)
  return h('p', { id: 'who', 'data-ready': String(ready) }, String(clients.length))
}

createRoot(document.getElementById('root') as HTMLElement).render(
  h(StrictMode, null, h(HoldfastProvider, { client }, h(Probe), h('p', { id: 'react' }, version), h(Status), h(Messages, { id: 'list-a' }), h(Messages, { id: 'list-b' }), h(Composer), h(Who))),
)
