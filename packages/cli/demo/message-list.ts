/** What the demo publishes: `id` is the demo's own, to match a pending line with its publication. */
export interface ChatMessage {
  id: string
  name: string
  text: string
  /** Sender's clock, ms since epoch. */
  at: number
}

/** Publications come from other clients: take only well-formed chat messages, cut to size. */
export function parseChatMessage(data: unknown): ChatMessage | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const { id, name, text, at } = data as Record<string, unknown>
  if (typeof id !== 'string' || typeof name !== 'string' || typeof text !== 'string') return undefined
  return { id: id.slice(0, 64), name: name.slice(0, 32), text: text.slice(0, 500), at: typeof at === 'number' && Number.isFinite(at) ? at : 0 }
}

interface Entry {
  epochIndex: number
  offset: number
  el: HTMLLIElement
}

export interface PendingLine {
  acked(): void
  failed(reason: string): void
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  if (className !== '') node.className = className
  node.textContent = text
  return node
}

function clock(at: number): string {
  if (at === 0) return ''
  const d = new Date(at)
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`
}

/**
 * The chat transcript. Lines are keyed by their stream position (epoch, offset), so a publication
 * seen both live and in a history reload shows once, and lines stay in stream order whichever
 * arrives first. Epochs are ordered by first sight; a new epoch after an old one means the server
 * lost the history in between, marked with a divider. Sent messages wait in a separate pending list
 * until their publication comes back.
 */
export class MessageList {
  readonly #keys = new Set<string>()
  readonly #entries: Entry[] = []
  readonly #epochs = new Map<string, number>()
  readonly #pending = new Map<string, HTMLLIElement>()
  /** Ids of messages this page sent, to tell own lines apart. */
  readonly #mine = new Set<string>()

  constructor(
    private readonly list: HTMLOListElement,
    private readonly pendingList: HTMLOListElement,
  ) {}

  /** Add a publication; false when it was already shown. */
  add(epoch: string, offset: number, msg: ChatMessage): boolean {
    this.#settle(msg.id)
    const key = `${epoch}:${offset}`
    if (this.#keys.has(key)) return false
    this.#keys.add(key)
    let epochIndex = this.#epochs.get(epoch)
    if (epochIndex === undefined) {
      epochIndex = this.#epochs.size
      this.#epochs.set(epoch, epochIndex)
      if (epochIndex > 0) this.#insert({ epochIndex, offset: -1, el: el('li', 'divider', 'the server lost the history here; older messages above') })
    }
    const li = el('li', this.#mine.has(msg.id) ? 'mine' : '', '')
    li.dataset['testid'] = 'message'
    li.dataset['key'] = key
    const name = el('span', 'name', msg.name)
    name.dataset['testid'] = 'message-name'
    const text = el('span', 'text', msg.text)
    text.dataset['testid'] = 'message-text'
    li.append(el('span', 'time', clock(msg.at)), name, text)
    this.#insert({ epochIndex, offset, el: li })
    return true
  }

  /** Show a sent message as pending until its publication arrives. */
  addPending(msg: ChatMessage): PendingLine {
    this.#mine.add(msg.id)
    const li = el('li', '', `${msg.name}: ${msg.text} (sending…)`)
    li.dataset['testid'] = 'pending-message'
    this.#pending.set(msg.id, li)
    this.pendingList.append(li)
    return {
      acked: () => {
        // Acked but not seen yet (the publication is on its way): say so, keep it until it lands.
        if (this.#pending.get(msg.id) === li) li.textContent = `${msg.name}: ${msg.text} (sent)`
      },
      failed: (reason) => {
        if (this.#pending.get(msg.id) !== li) return
        this.#pending.delete(msg.id)
        li.className = 'failed'
        li.dataset['testid'] = 'failed-message'
        li.textContent = `${msg.name}: ${msg.text} (not sent: ${reason})`
      },
    }
  }

  clear(): void {
    this.#keys.clear()
    this.#entries.length = 0
    this.#epochs.clear()
    this.#pending.clear()
    this.list.replaceChildren()
    this.pendingList.replaceChildren()
  }

  #settle(id: string): void {
    const li = this.#pending.get(id)
    if (li === undefined) return
    this.#pending.delete(id)
    li.remove()
  }

  #insert(entry: Entry): void {
    const entries = this.#entries
    // Usually the newest line: scan from the end.
    let i = entries.length
    while (i > 0) {
      const prev = entries[i - 1] as Entry
      if (prev.epochIndex < entry.epochIndex || (prev.epochIndex === entry.epochIndex && prev.offset < entry.offset)) break
      i--
    }
    const next = entries[i]
    entries.splice(i, 0, entry)
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40
    this.list.insertBefore(entry.el, next === undefined ? null : next.el)
    if (atBottom) this.list.scrollTop = this.list.scrollHeight
  }
}
