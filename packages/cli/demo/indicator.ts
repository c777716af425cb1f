import type { ConnectionState, HoldfastClient } from '@holdfast/client'

export type IndicatorState = 'connecting' | 'connected' | 'reconnecting' | 'offline'

export interface IndicatorInput {
  state: ConnectionState
  /** A connection was up at least once: later attempts are reconnects. */
  everConnected: boolean
  /** When the scheduled reconnect attempt fires (ms since epoch), or null when none is scheduled. */
  retryAt: number | null
  now: number
  /** Why the client stopped, when it is closed. */
  closedReason: string | null
}

export interface IndicatorView {
  state: IndicatorState
  label: string
  /** A "retry now" button makes sense: a reconnect is waiting for its timer. */
  canRetry: boolean
}

/** The wording rules in one pure function: what the pill says for a client state. */
export function describeConnection(input: IndicatorInput): IndicatorView {
  switch (input.state) {
    case 'connected':
      return { state: 'connected', label: 'connected', canRetry: false }
    case 'connecting':
      return input.everConnected
        ? { state: 'reconnecting', label: 'reconnecting…', canRetry: false }
        : { state: 'connecting', label: 'connecting…', canRetry: false }
    case 'closed':
      return { state: 'offline', label: input.closedReason === null ? 'offline' : `offline: ${input.closedReason}`, canRetry: true }
    case 'disconnected': {
      // No timer: the SDK waits for the browser's `online` event before it tries again.
      if (input.retryAt === null) return { state: 'offline', label: 'offline', canRetry: false }
      const seconds = Math.ceil((input.retryAt - input.now) / 1000)
      return {
        state: 'reconnecting',
        label: seconds > 0 ? `reconnecting in ${seconds} s` : 'reconnecting…',
        canRetry: true,
      }
    }
  }
}

/**
 * Keeps the connection pill in sync with the client. The SDK reports the delay of the next attempt
 * in its `disconnected` event (`reconnectInMs`); the countdown ticks only while one is pending.
 */
export class ConnectionIndicator {
  #everConnected = false
  #retryAt: number | null = null
  #closedReason: string | null = null
  #ticker: ReturnType<typeof setInterval> | undefined

  constructor(
    private readonly client: HoldfastClient,
    private readonly pill: HTMLElement,
    private readonly label: HTMLElement,
    private readonly retry: HTMLButtonElement,
  ) {
    client.on('state', ({ to, reason }) => {
      if (to === 'connected') this.#everConnected = true
      this.#closedReason = to === 'closed' ? reason.message : null
      // `disconnected` (with the delay) follows this event when a reconnect is scheduled.
      this.#retryAt = null
      this.render()
    })
    client.on('disconnected', ({ reconnectInMs }) => {
      this.#retryAt = reconnectInMs === null ? null : Date.now() + reconnectInMs
      this.render()
    })
    // `connect()` on a disconnected client attempts at once; on a closed one it starts over.
    retry.addEventListener('click', () => client.connect())
    this.render()
  }

  render(): void {
    const view = describeConnection({
      state: this.client.state,
      everConnected: this.#everConnected,
      retryAt: this.#retryAt,
      now: Date.now(),
      closedReason: this.#closedReason,
    })
    this.pill.dataset['state'] = view.state
    if (this.label.textContent !== view.label) this.label.textContent = view.label
    this.retry.hidden = !view.canRetry
    const counting = this.#retryAt !== null && this.#retryAt > Date.now()
    if (counting && this.#ticker === undefined) this.#ticker = setInterval(() => this.render(), 250)
    else if (!counting && this.#ticker !== undefined) {
      clearInterval(this.#ticker)
      this.#ticker = undefined
    }
  }
}
