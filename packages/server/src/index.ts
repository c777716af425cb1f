export { createHoldfast, type Holdfast } from './holdfast.js'
export type { CloseOptions, DisconnectTarget, GatewayEvents, PublishApiOptions } from './gateway.js'
export type {
  ChannelHookContext,
  ChannelOptions,
  CommandRate,
  ConnectInfo,
  ConnectionInfo,
  DisconnectInfo,
  HoldfastOptions,
  PublishHookContext,
  ReadHookContext,
  ReadKind,
  TransportName,
} from './options.js'
export type { UpgradeRequest } from './transport/transport.js'
export type { AuthContext, AuthResult, AuthenticateHook, JwtAuthOptions } from './auth/types.js'
export type { RpcContext, RpcHandler } from './rpc-router.js'
export type { ChannelSchemas } from './schema.js'
export type { ProxyOptions, ProxyEventOptions, WebhookOptions, WebhookEvent } from './backend/options.js'
export type {
  ControlMessage,
  Durability,
  Engine,
  EngineHandler,
  HistoryPage,
  HistoryQuery,
  IdempotencyClaim,
  NodeInfo,
  PublishOptions,
  PublishOutcome,
  StreamOptions,
  StreamPublication,
} from './engine/engine.js'
export { MemoryEngine, type MemoryEngineOptions } from './engine/memory-engine.js'
export type { Metrics } from './metrics.js'
export { HoldfastError, CloseCodes, ErrorCodes } from '@holdfast/protocol'
