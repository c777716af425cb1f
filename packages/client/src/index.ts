export { HoldfastClient } from './client.js'
export type {
  CallOptions,
  ClientEvents,
  ConnectedEvent,
  ConnectingEvent,
  DisconnectedEvent,
  DiscardedCommand,
  HistoryOptions,
  QueueEvent,
  RestoredCommand,
  StoredCommandInfo,
} from './events.js'
export type { ClientStorage } from './storage.js'
export { indexedDbStorage } from './indexed-db-storage.js'
export { fileStorage } from '#file-storage'
export { Subscription } from './subscription.js'
export type {
  JoinLeaveEvent,
  PublicationEvent,
  SubscribedEvent,
  SubscriptionEvents,
  SubscriptionState,
  UnsubscribedEvent,
} from './subscription.js'
export type { ConnectionState, StateChange, StateReason } from './state.js'
export type { ClientOptions, WebSocketConstructor, WebSocketLike } from './options.js'
export type { EndpointSource } from './endpoints.js'
export { HoldfastError } from '@holdfast/protocol/internal'
export type { ClientInfo, ErrorCodeName, HistoryResult, PresenceResult, PresenceStatsResult, PublishResult, StreamPosition } from '@holdfast/protocol'
