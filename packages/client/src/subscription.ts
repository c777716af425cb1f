import { adviceFor, continuesFrom, HoldfastError } from '@holdfast/protocol/internal'
import type { ClientInfo, PubPush, StreamPosition, SubscribePush, SubscribeResult, UnsubscribePush } from '@holdfast/protocol'
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { TypedEmitter } from './emitter.js'

/**
 * Most live publications held while a subscribe is in flight. Past it they are dropped and the
 * subscription resubscribes from its position once the reply is in: the stream replays them, so
 * holding them was only an optimisation, and memory stays bounded on a hot channel.
 */
const MAX_HELD = 10_000

/** What `#check` returns for data its schema refused. */
const INVALID: unique symbol = Symbol('invalid')

export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed'

/** `T`: the type of the channel's data, as given to `client.subscribe<T>()` or by its schema. */
export interface PublicationEvent<T = unknown> {
  channel: string
  offset: number
  epoch: string
  data: T
  /** Publisher, when a client published it. */
  info?: ClientInfo
}

export interface SubscribedEvent {
  channel: string
  /** true: every publication missed since the last position was (or is being) delivered. */
  recovered: boolean
  /** true: this subscribe tried to recover a position. With `recovered: false` the app must reload its state. */
  wasRecovering: boolean
  /** The position the subscription continues from. */
  epoch: string
  offset: number
}

export interface UnsubscribedEvent {
  channel: string
  /** Close code: 1000 when the application unsubscribed or the server refused; the server's code otherwise. */
  code: number
  reason: string
  /** Present when the server refused the subscription. */
  error?: HoldfastError
}

export interface JoinLeaveEvent {
  channel: string
  info: ClientInfo
}

export interface SubscriptionEvents<T = unknown> {
  publication: PublicationEvent<T>
  subscribed: SubscribedEvent
  unsubscribed: UnsubscribedEvent
  join: JoinLeaveEvent
  leave: JoinLeaveEvent
  error: HoldfastError
}

export type SubscribeReply = { ok: true; result: SubscribeResult } | { ok: false; error: HoldfastError }

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  readonly connected: boolean
  /** Send a subscribe command on the current connection; `onReply` runs unless the connection drops first. */
  sendSubscribe(channel: string, recover: StreamPosition | undefined, onReply: (reply: SubscribeReply) => void): void
  sendUnsubscribe(channel: string): void
  /** The last delivered position changed (undefined: forgotten, the subscription ended). */
  moved(channel: string, position: StreamPosition | undefined): void
  /** Remove the subscription from the client's registry (it ended). */
  forget(sub: Subscription): void
  /** Delay before a resubscribe attempt. */
  retryDelay(attempt: number, advice: 'reconnect' | 'backoff'): number
}

/**
 * One channel subscription. It keeps the channel's stream position ({offset, epoch}) from its first
 * subscribe result on, resubscribes with it after every reconnect, and delivers each publication to
 * the application exactly once and in offset order:
 * - a publication at or below the last delivered offset (same epoch) is a duplicate and is dropped;
 * - a publication beyond the next offset, or from another epoch, means something was missed: the
 *   subscription resubscribes with `recover`, and the server replays the missing part (or says
 *   `recovered: false`). Nothing is buffered on the client for long: the stream is the buffer.
 * - publications that arrive while a subscribe is in flight are held and merged after its reply.
 */
export class Subscription<T = unknown> extends TypedEmitter<SubscriptionEvents<T>> {
  readonly channel: string
  readonly #host: SubscriptionHost
  /** Checks each publication's data before delivery (`subscribe(channel, { schema })`). */
  #schema: StandardSchemaV1<unknown, T> | undefined
  #state: SubscriptionState = 'subscribing'
  #position: StreamPosition | undefined
  /** Live publications that arrived while a subscribe was in flight. */
  #held: PubPush[] = []
  #heldOverflow = false
  /** Identifies the current subscribe attempt, so a late reply to an abandoned one is ignored. */
  #attemptSeq = 0
  #inFlight = false
  #retries = 0
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  /** The server answered that our position cannot be recovered: the next result is reported as a failed recovery. */
  #positionLost = false

  /** @internal Created by `HoldfastClient.subscribe()` or by a server-side subscription. */
  constructor(channel: string, host: SubscriptionHost, serverPosition?: StreamPosition) {
    super()
    this.channel = channel
    this.#host = host
    if (serverPosition !== undefined) {
      this.#state = 'subscribed'
      this.#position = { ...serverPosition }
    }
  }

  /** @internal The schema of `client.subscribe(channel, { schema })`; the latest one given counts. */
  _setSchema(schema: StandardSchemaV1<unknown, T>): void {
    this.#schema = schema
  }

  get state(): SubscriptionState {
    return this.#state
  }

  /** The last delivered position (a copy), or undefined before the first subscribe result. */
  get position(): StreamPosition | undefined {
    return this.#position === undefined ? undefined : { ...this.#position }
  }

  /** Stop the subscription; the position is forgotten, so a later `client.subscribe()` starts fresh. */
  unsubscribe(): void {
    if (this.#state === 'unsubscribed') return
    const onServer = this.#state === 'subscribed' || this.#inFlight
    this.#end({ channel: this.channel, code: 1000, reason: 'unsubscribed by the application' })
    if (onServer && this.#host.connected) this.#host.sendUnsubscribe(this.channel)
  }

  // ------------------------------------------------------------ called by the client

  /** @internal A connection is up: (re)subscribe. */
  _connected(): void {
    if (this.#state === 'unsubscribed') return
    this.#state = 'subscribing'
    this.#send()
  }

  /** @internal The connection dropped: everything in flight is void; resubscribe on the next connect. */
  _disconnected(): void {
    if (this.#state === 'unsubscribed') return
    this.#state = 'subscribing'
    this.#inFlight = false
    this.#attemptSeq++
    this.#held = []
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
  }

  /** @internal The client was closed: stop timers, keep the position for a later `connect()`. */
  _closed(): void {
    this._disconnected()
  }

  /** @internal A position stored by an earlier page or process: recover from it, unless one is known already. */
  _restore(position: StreamPosition): void {
    if (this.#position === undefined && this.#state === 'subscribing' && !this.#inFlight) this.#position = { ...position }
  }

  /** @internal A server-side subscription was created: tell its (just attached) listeners. */
  _announce(): void {
    if (this.#state === 'subscribed') this.#emitSubscribed(false, false)
  }

  /** @internal A live publication for this channel. */
  _publication(pub: PubPush): void {
    if (this.#state === 'subscribing') {
      if (!this.#inFlight || this.#heldOverflow) return
      if (this.#held.length < MAX_HELD) this.#held.push(pub)
      else {
        this.#held = []
        this.#heldOverflow = true
      }
      return
    }
    if (this.#state === 'subscribed') this.#accept(pub.epoch, pub.offset, pub.data, pub.info)
  }

  /** @internal */
  _joinLeave(kind: 'join' | 'leave', info: ClientInfo): void {
    if (this.#state === 'subscribed') this.emit(kind, { channel: this.channel, info })
  }

  /** @internal The server (re)subscribed this connection to the channel. */
  _serverSubscribed(push: SubscribePush): void {
    if (this.#state !== 'subscribed' || this.#position === undefined) return
    const { epoch, offset } = this.#position
    // The server is ahead of what we delivered: catch up through a recovering resubscribe.
    if (push.offset > offset || !continuesFrom({ epoch, offset }, push.epoch)) this.#resync()
  }

  /** @internal The server ended the subscription; the code's advice says whether to come back. */
  _serverUnsubscribed(push: UnsubscribePush): void {
    if (this.#state === 'unsubscribed') return
    const advice = adviceFor(push.code)
    if (advice === 'none' || advice === 'stop') {
      this.#end({ channel: this.channel, code: push.code, reason: push.reason })
      return
    }
    this.#state = 'subscribing'
    this.#attemptSeq++
    this.#inFlight = false
    this.#held = []
    this.#scheduleRetry(advice === 'reconnect' ? 'reconnect' : 'backoff')
  }

  // ------------------------------------------------------------ internals

  #send(): void {
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    if (!this.#host.connected) return
    const seq = ++this.#attemptSeq
    const recover = this.#positionLost ? undefined : this.#position
    this.#inFlight = true
    this.#held = []
    this.#heldOverflow = false
    this.#host.sendSubscribe(this.channel, recover === undefined ? undefined : { ...recover }, (reply) => {
      if (seq !== this.#attemptSeq || this.#state !== 'subscribing') return
      this.#inFlight = false
      if (reply.ok) this.#subscribed(reply.result, recover !== undefined)
      else this.#refused(reply.error)
    })
  }

  /** A gap or an epoch change on a live subscription: resubscribe from the last delivered position. */
  #resync(): void {
    this.#state = 'subscribing'
    if (this.#host.connected) {
      // The server still holds the subscription; drop it first so the subscribe is not `already_subscribed`.
      this.#host.sendUnsubscribe(this.channel)
      this.#send()
    }
  }

  #subscribed(result: SubscribeResult, askedToRecover: boolean): void {
    const held = this.#held
    this.#held = []
    const wasRecovering = askedToRecover || this.#positionLost
    // A recovery into another epoch would be a contradiction; take it as a failed one.
    const recovered = askedToRecover && result.recovered && this.#position !== undefined && continuesFrom(this.#position, result.epoch)
    this.#positionLost = false
    this.#state = 'subscribed'
    if (recovered && this.#position !== undefined) {
      this.#emitSubscribed(true, wasRecovering)
      for (const pub of result.publications) {
        if (!this.#accept(result.epoch, pub.offset, pub.data, pub.info)) return
      }
      // "Recovered" yet short of the stream top: treat it as a gap rather than skip silently.
      if (this.#state === 'subscribed' && result.offset > (this.#position?.offset ?? 0)) {
        this.#gap()
        return
      }
    } else {
      this.#position = { epoch: result.epoch, offset: result.offset }
      this.#host.moved(this.channel, this.#position)
      this.#emitSubscribed(false, wasRecovering)
    }
    if (this.#heldOverflow) {
      this.#heldOverflow = false
      this.#gap()
      return
    }
    this.#retries = 0
    for (const pub of held) {
      if (this.#state !== 'subscribed') return
      this.#accept(pub.epoch, pub.offset, pub.data, pub.info)
    }
  }

  #emitSubscribed(recovered: boolean, wasRecovering: boolean): void {
    const pos = this.#position
    this.emit('subscribed', {
      channel: this.channel,
      recovered,
      wasRecovering,
      epoch: pos?.epoch ?? '',
      offset: pos?.offset ?? 0,
    })
  }

  /** Deliver if it is the next publication; drop a duplicate; resync on a gap. false: stop processing this batch. */
  #accept(epoch: string, offset: number, data: unknown, info: ClientInfo | undefined): boolean {
    const pos = this.#position
    // A listener may have unsubscribed, or a gap restarted the subscribe, in the middle of a batch.
    if (pos === undefined || this.#state !== 'subscribed') return false
    if (epoch === pos.epoch && offset <= pos.offset) return true
    if (offset !== pos.offset + 1 || !continuesFrom(pos, epoch)) {
      this.#gap()
      return false
    }
    this.#position = { epoch, offset }
    this.#host.moved(this.channel, this.#position)
    const value = this.#check(offset, data)
    if (value === INVALID) return true
    const event: PublicationEvent<T> = info === undefined ? { channel: this.channel, offset, epoch, data: value } : { channel: this.channel, offset, epoch, data: value, info }
    this.emit('publication', event)
    return true
  }

  /**
   * The data as the schema outputs it, or INVALID: then the publication is skipped (the position
   * moves past it, so it is not asked for again) and an `error` event says so, with the schema's
   * result (its issues) as the cause. A schema must validate synchronously.
   */
  #check(offset: number, data: unknown): T | typeof INVALID {
    const result = this.#schema?.['~standard'].validate(data)
    if (result === undefined) return data as T
    if (!(result instanceof Promise) && !result.issues) return result.value
    this.emit('error', new HoldfastError('bad_request', `publication ${offset} of ${this.channel} does not match its schema`, { cause: result }))
    return INVALID
  }

  #gap(): void {
    this.#retries++
    if (this.#retries <= 1) this.#resync()
    else {
      // Repeated gaps right after resubscribing: do not spin; back off between attempts.
      this.#state = 'subscribing'
      if (this.#host.connected) this.#host.sendUnsubscribe(this.channel)
      this.#scheduleRetry('backoff')
    }
  }

  #refused(error: HoldfastError): void {
    this.emit('error', error)
    if (this.#state !== 'subscribing') return
    if (error.code === 'unrecoverable_position') {
      this.#positionLost = true
      this.#send()
      return
    }
    if (error.code === 'already_subscribed') {
      this.#retries++
      this.#host.sendUnsubscribe(this.channel)
      if (this.#retries <= 1) this.#send()
      else this.#scheduleRetry('backoff')
      return
    }
    if (error.temporary) {
      this.#retries++
      this.#scheduleRetry('backoff')
      return
    }
    this.#end({ channel: this.channel, code: 1000, reason: `subscription refused: ${error.message}`, error })
  }

  #scheduleRetry(advice: 'reconnect' | 'backoff'): void {
    clearTimeout(this.#retryTimer)
    const delay = this.#host.retryDelay(Math.max(1, this.#retries), advice)
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      if (this.#state === 'subscribing') this.#send()
    }, delay)
  }

  #end(event: UnsubscribedEvent): void {
    this.#state = 'unsubscribed'
    this.#position = undefined
    this.#positionLost = false
    this.#inFlight = false
    this.#attemptSeq++
    this.#held = []
    this.#retries = 0
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    this.#host.forget(this)
    this.#host.moved(this.channel, undefined)
    this.emit('unsubscribed', event)
  }
}
