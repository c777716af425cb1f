// Table rendering: DOM built with textContent only, so a channel or user name can never become markup.
import type { ChannelRow, NodeRow } from './fleet.js'

const PALETTE = ['#1f6feb', '#1a7f37', '#bf3989', '#9a6700', '#8250df', '#cf222e', '#0a7ea4', '#57606a']

/** A node's colour follows its place in the sorted id list, so it is the same in charts and tables. */
export function colorOf(index: number): string {
  return PALETTE[index % PALETTE.length] as string
}

function cell(text: string, cls?: string): HTMLTableCellElement {
  const td = document.createElement('td')
  td.textContent = text
  if (cls !== undefined) td.className = cls
  return td
}

function rate(v: number | undefined): string {
  return v === undefined ? '–' : String(v)
}

export function formatUptime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`
}

export function renderNodes(body: HTMLTableSectionElement, rows: readonly NodeRow[], colors: ReadonlyMap<string, string>, now: number): void {
  body.replaceChildren(
    ...rows.map((r) => {
      const tr = document.createElement('tr')
      tr.dataset['testid'] = 'node-row'
      tr.dataset['node'] = r.id
      const name = cell(r.id, 'name')
      const swatch = document.createElement('span')
      swatch.className = 'swatch'
      swatch.style.background = colors.get(r.id) ?? '#57606a'
      name.prepend(swatch)
      const conns = cell(String(r.connections), 'num')
      conns.dataset['testid'] = 'node-connections'
      tr.append(
        name,
        conns,
        cell(String(r.subscriptions), 'num'),
        cell(String(r.channels), 'num'),
        cell(rate(r.inPerSec), 'num'),
        cell(rate(r.outPerSec), 'num'),
        cell(formatUptime(now - r.startedAt), 'num'),
        cell(r.state, `state-${r.state.replace(' ', '-')}`),
      )
      return tr
    }),
  )
}

/** Channel rows; `onPick` fills the presence and publish forms with the channel. */
export function renderChannels(body: HTMLTableSectionElement, rows: readonly ChannelRow[], onPick: (channel: string) => void): void {
  body.replaceChildren(
    ...rows.map((r) => {
      const tr = document.createElement('tr')
      tr.dataset['testid'] = 'channel-row'
      tr.dataset['channel'] = r.channel
      const name = document.createElement('td')
      name.className = 'name'
      const pick = document.createElement('button')
      pick.type = 'button'
      pick.className = 'link'
      pick.title = 'use this channel in the presence and publish forms'
      pick.textContent = r.channel
      pick.addEventListener('click', () => onPick(r.channel))
      name.append(pick)
      const subs = cell(String(r.subscribers), 'num')
      subs.dataset['testid'] = 'channel-subscribers'
      tr.append(name, subs, cell(String(r.nodes), 'num'))
      return tr
    }),
  )
}

export function renderPresence(list: HTMLUListElement, clients: ReadonlyArray<{ client: string; user: string }>): void {
  list.replaceChildren(
    ...clients.map((c) => {
      const li = document.createElement('li')
      li.dataset['testid'] = 'presence-client'
      const user = document.createElement('strong')
      user.textContent = c.user === '' ? '(anonymous)' : c.user
      const id = document.createElement('span')
      id.className = 'muted'
      id.textContent = ` ${c.client}`
      li.append(user, id)
      return li
    }),
  )
}
