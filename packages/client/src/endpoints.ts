/** Where the endpoints come from: a fixed list, a discovery URL, or a function of yours. */
export type EndpointSource = readonly string[] | string | (() => readonly string[] | Promise<readonly string[]>)

/** After a failed discovery, the next try comes no sooner than this (unless a reconnect cycle fails). */
const RETRY_AFTER_FAILURE_MS = 5000

/** A resolved list and how long it may be used. */
export interface Resolved {
  urls: string[]
  ttlMs: number
}

/**
 * The URLs the client connects to, tried in turn. With a discovery source the list is fetched
 * before the first attempt, again once it expires (also while connected, so that it is current
 * when it is needed), and again after every URL of it was tried without success (a reconnect
 * cycle); when discovery fails the last known list is used.
 */
export class Endpoints {
  #urls: readonly string[]
  #index = 0
  /** Attempts since the list was last resolved. */
  #tried = 0
  #expiresAt = 0
  #resolving: Promise<void> | undefined

  /** Fetches a fresh list; undefined for a fixed list. */
  readonly #resolve: (() => Promise<Resolved>) | undefined
  readonly #onError: (cause: unknown, haveList: boolean) => void

  constructor(urls: readonly string[], resolve: (() => Promise<Resolved>) | undefined, onError: (cause: unknown, haveList: boolean) => void) {
    this.#urls = urls
    this.#resolve = resolve
    this.#onError = onError
  }

  /** The URL of the next attempt; undefined when discovery has never answered. */
  get url(): string | undefined {
    return this.#urls[this.#index % Math.max(1, this.#urls.length)]
  }

  /** Before an attempt: a promise when the list is re-resolved first (it never rejects). */
  refresh(): Promise<void> | undefined {
    const resolve = this.#resolve
    if (resolve === undefined) return undefined
    if (this.#urls.length > 0 && Date.now() < this.#expiresAt && this.#tried < this.#urls.length) return undefined
    this.#resolving ??= resolve().then(
      (r) => {
        this.#resolving = undefined
        this.#use(r)
      },
      (cause: unknown) => {
        this.#resolving = undefined
        // The last known list meanwhile; ask again after a pause, or when a cycle through it fails.
        this.#tried = 0
        this.#expiresAt = Date.now() + RETRY_AFTER_FAILURE_MS
        this.#onError(cause, this.#urls.length > 0)
      },
    )
    return this.#resolving
  }

  /** A connection is up: a new reconnect cycle starts from here. */
  connected(): void {
    this.#tried = 0
  }

  /** With discovery: ms until the list expires (0: already), for refreshing it while connected. */
  expiresInMs(): number | undefined {
    return this.#resolve === undefined ? undefined : Math.max(0, this.#expiresAt - Date.now())
  }

  /** The attempt failed (or the node said go elsewhere): the next one takes the next URL. */
  rotate(): void {
    this.#tried++
    this.#index = (this.#index + 1) % Math.max(1, this.#urls.length)
  }

  #use(r: Resolved): void {
    const current = this.url
    this.#urls = r.urls
    this.#expiresAt = Date.now() + r.ttlMs
    this.#tried = 0
    const keep = current === undefined ? -1 : r.urls.indexOf(current)
    // A node still listed keeps its clients; otherwise start anywhere, so a fleet spreads out.
    this.#index = keep !== -1 ? keep : Math.floor(Math.random() * r.urls.length)
  }
}
