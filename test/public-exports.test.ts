// The public surface of every package, entry point by entry point (package.json `exports`): each
// name a user can import, values and types alike. A change to a package's surface shows as a diff
// of the lists below. Read from the sources with the TypeScript parser, following `export * from`
// within the package; `/internal` subpaths are deliberate and listed too.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Names a module exports, from its syntax: named exports, exported declarations, and `export *` of relative modules. */
function exportedNames(file: string, seen = new Set<string>()): string[] {
  if (seen.has(file)) return []
  seen.add(file)
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const out: string[] = []
  for (const st of sf.statements) {
    if (ts.isExportDeclaration(st)) {
      const from = st.moduleSpecifier !== undefined && ts.isStringLiteral(st.moduleSpecifier) ? st.moduleSpecifier.text : undefined
      if (st.exportClause === undefined) {
        if (from?.startsWith('.') === true) out.push(...exportedNames(resolve(dirname(file), from.replace(/\.js$/, '.ts')), seen))
        else out.push(`* from ${from ?? '?'}`)
      } else if (ts.isNamespaceExport(st.exportClause)) out.push(st.exportClause.name.text)
      else for (const el of st.exportClause.elements) out.push(el.name.text)
    } else if (ts.isExportAssignment(st)) out.push('default')
    else if (ts.canHaveModifiers(st) && ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword) === true) {
      const isDefault = ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword) === true
      if (isDefault) out.push('default')
      else if (ts.isVariableStatement(st)) for (const d of st.declarationList.declarations) out.push(d.name.getText(sf))
      else if ('name' in st && st.name !== undefined) out.push((st.name as ts.Identifier).text)
    }
  }
  return out
}

function surface(pkg: string): Record<string, string[]> {
  const manifest = JSON.parse(readFileSync(`${root}packages/${pkg}/package.json`, 'utf8')) as { name: string; exports: Record<string, { source?: string }> }
  const out: Record<string, string[]> = {}
  for (const [sub, target] of Object.entries(manifest.exports)) {
    if (target.source === undefined) continue
    out[`${manifest.name}${sub === '.' ? '' : sub.slice(1)}`] = [...new Set(exportedNames(resolve(root, 'packages', pkg, target.source)))].sort()
  }
  return out
}

const EXPECTED: Record<string, Record<string, string[]>> = {
  protocol: {
    '@holdfast/protocol': [
      'ClientInfo', 'ClientMessage', 'CloseCodeInfo', 'CloseCodeName', 'CloseCodes', 'Codec', 'Command', 'CommandType', 'ConnectCommand',
      'ConnectResult', 'ConnectionLimits', 'DecodeLimits', 'DecodedClientMessage', 'DisconnectPush', 'ErrorCodeInfo', 'ErrorCodeName', 'ErrorCodes',
      'ErrorReply', 'FrameData', 'HistoryCommand', 'HistoryResult', 'HoldfastError', 'InvalidCommand', 'JoinPush', 'LeavePush', 'MessagePush',
      'PROTOCOL_VERSION', 'PingCommand', 'PingPush', 'PingResult', 'PongMessage', 'PresenceCommand', 'PresenceResult', 'PresenceStatsCommand',
      'PresenceStatsResult', 'PubPush', 'Publication', 'PublishCommand', 'PublishResult', 'Push', 'PushType', 'ReconnectAdvice', 'RefreshCommand',
      'RefreshResult', 'Reply', 'ReplyError', 'ResultByType', 'ResultReply', 'RpcCommand', 'RpcResult', 'ServerMessage', 'StreamPosition',
      'SubRefreshCommand', 'Subprotocols', 'SubscribeCommand', 'SubscribePush', 'SubscribeResult', 'UnsubscribeCommand', 'UnsubscribePush',
      'UnsubscribeResult', 'adviceFor', 'closeCodeName', 'codecFor', 'continuesFrom', 'errorCodeName', 'isErrorReply', 'isReply', 'jsonCodec',
      'msgpackCodec', 'validateClientMessage', 'validateServerMessage',
    ],
    '@holdfast/protocol/internal': [
      'ClientCodec', 'HoldfastError', 'OptionChecks', 'PROTOCOL_VERSION', 'Subprotocols', 'adviceFor', 'batches', 'bytesReplacer', 'closeCodeName',
      'closeCodes', 'continuesFrom', 'errorCodeName', 'errorCodes', 'hasBytes', 'isErrorReply', 'isReply', 'jsonClientCodec', 'optionChecks',
      'reviveBytes',
    ],
    '@holdfast/protocol/msgpack': [
      'msgpackCodec',
    ],
  },
  server: {
    '@holdfast/server': [
      'AuthContext', 'AuthResult', 'AuthenticateHook', 'ChannelHookContext', 'ChannelOptions', 'ChannelSchemas', 'CloseCodes', 'CloseOptions',
      'CommandRate', 'ConnectInfo', 'ConnectionInfo', 'ControlMessage', 'DisconnectInfo', 'DisconnectTarget', 'Durability', 'Engine',
      'EngineHandler', 'ErrorCodes', 'GatewayEvents', 'HistoryPage', 'HistoryQuery', 'Holdfast', 'HoldfastError', 'HoldfastOptions',
      'IdempotencyClaim', 'JwtAuthOptions', 'MemoryEngine', 'MemoryEngineOptions', 'Metrics', 'NodeInfo', 'ProxyEventOptions', 'ProxyOptions',
      'PublishApiOptions', 'PublishHookContext', 'PublishOptions', 'PublishOutcome', 'ReadHookContext', 'ReadKind', 'RpcContext', 'RpcHandler',
      'StreamOptions', 'StreamPublication', 'TransportName', 'UpgradeRequest', 'WebhookEvent', 'WebhookOptions', 'createHoldfast',
    ],
    '@holdfast/server/redis': [
      'RedisEngine', 'RedisEngineOptions',
    ],
    '@holdfast/server/fastify': [
      'DiscoveryDocument', 'HoldfastDiscoveryOptions', 'HoldfastFastifyOptions', 'default', 'discoveryDocument', 'holdfastDiscovery',
      'holdfastFastify',
    ],
    '@holdfast/server/backend': [
      'BreakerOptions', 'PROXY_EVENTS', 'ProxyEvent', 'ProxyEventOptions', 'ProxyOptions', 'WEBHOOK_EVENTS', 'WebhookEvent', 'WebhookHeaders',
      'WebhookOptions', 'signWebhook', 'verifyWebhook',
    ],
    '@holdfast/server/api': [
      'API_VERSION', 'ApiErrorBody', 'ApiKeyVerdict', 'HTTP_STATUS', 'HoldfastApiOptions', 'createApiKeyCheck', 'default', 'holdfastApi',
    ],
    '@holdfast/server/internal': [
      'CHANNEL_DEFAULTS', 'Counters', 'DEFAULTS', 'EngineHost', 'Gateway', 'HTTP_GUARD_DEFAULTS', 'HttpGuard', 'HttpGuardOptions', 'IpcEngine',
      'IpcEngineOptions', 'IpcPort', 'MemoryEngine', 'ProxyProtocolOptions', 'ProxyRefusal', 'RedisTopology', 'ResolvedOptions', 'TrustedProxies',
      'UWS_PACKAGES', 'Uws', 'acceptProxyProtocol', 'clientAddress', 'createJwtVerifier', 'guardHttpServer', 'httpServerOptions', 'loadUws',
      'mintToken', 'parseRedisUrl', 'redactRedisUrl', 'resolveOptions', 'resolveTrustProxy', 'scanProxyHeader',
    ],
    '@holdfast/server/internal/client-address': [
      'TrustProxy', 'TrustedProxies', 'clientAddress', 'resolveTrustProxy',
    ],
    '@holdfast/server/internal/redis-url': [
      'RedisEndpoint', 'RedisTopology', 'endpointName', 'parseRedisUrl', 'redact',
    ],
  },
  client: {
    '@holdfast/client': [
      'CallOptions', 'ClientEvents', 'ClientInfo', 'ClientOptions', 'ClientStorage', 'ConnectedEvent', 'ConnectingEvent', 'ConnectionState',
      'DiscardedCommand', 'DisconnectedEvent', 'EndpointSource', 'ErrorCodeName', 'HistoryOptions', 'HistoryResult', 'HoldfastClient',
      'HoldfastError', 'JoinLeaveEvent', 'PresenceResult', 'PresenceStatsResult', 'PublicationEvent', 'PublishResult', 'QueueEvent',
      'RestoredCommand', 'StateChange', 'StateReason', 'StoredCommandInfo', 'StreamPosition', 'SubscribeOptions', 'SubscribedEvent', 'Subscription',
      'SubscriptionEvents', 'SubscriptionState', 'UnsubscribedEvent', 'WebSocketConstructor', 'WebSocketLike', 'fileStorage', 'indexedDbStorage',
    ],
  },
  react: {
    '@holdfast/react': [
      'HoldfastProvider', 'HoldfastProviderProps', 'PresenceView', 'Publication', 'PublishEntry', 'PublishView', 'SubscriptionView',
      'UseSubscriptionOptions', 'useConnectionState', 'useHoldfastClient', 'usePresence', 'usePublish', 'useSubscription',
    ],
  },
  cli: {
    'holdfast': [
      'CliError', 'DEFAULT_PUBLIC_DIR', 'ENGINES', 'EngineName', 'Holdfast', 'HttpAppOptions', 'LOG_LEVELS', 'LogLevel', 'ReadFile', 'RunningServer',
      'SETTINGS', 'ServeConfig', 'SettingName', 'SettingSource', 'TokenRequest', 'buildHttpApp', 'envName', 'parseDuration', 'resolveServeConfig',
      'resolveTokenRequest', 'runServe', 'runToken', 'startServer',
    ],
    'holdfast/chaos': [
      'BLACKHOLE_MODES', 'BlackholeMode', 'ChaosProxy', 'ChaosProxyOptions', 'ChaosStats', 'ControlApi', 'ControlApiOptions', 'DIRECTIONS',
      'DIRECTION_DEFAULTS', 'Direction', 'DirectionFaults', 'Endpoint', 'FaultConfig', 'FaultPatch', 'applyFaultPatch', 'isLoopbackHost', 'noFaults',
      'startControlApi',
    ],
    'holdfast/bench': [
      'BENCH_FLAGS', 'BENCH_MODES', 'BenchConfig', 'BenchFlag', 'BenchMode', 'BenchReport', 'ChannelLog', 'ClientProtocol', 'CompareRatio',
      'CompareReport', 'DrainTarget', 'FromWorker', 'Histogram', 'MAX_CONNECTIONS_PER_WORKER', 'MAX_HOLES', 'Percentiles', 'PreparedLog',
      'ProcSample', 'RSS_NOISE_BYTES', 'RunIO', 'SERVER_KINDS', 'SERVER_LABELS', 'SeqState', 'SeqVerdict', 'ServerKind', 'ServerProcessStats',
      'ServerStats', 'ShootoutResult', 'ShootoutStep', 'StartedServer', 'TimelinePoint', 'ToWorker', 'WorkerResult', 'WorkerSetup', 'WorkerTick',
      'addEncoded', 'checkConnection', 'encodeHistogram', 'formatCompare', 'formatReport', 'newHistogram', 'newSeqState', 'parseSourceIps',
      'percentiles', 'protocolFor', 'ratios', 'readProcSample', 'recordDelivery', 'recordMs', 'renderCompareHtml', 'renderReportHtml',
      'resolveBenchConfig', 'runBench', 'runCompare',
    ],
  },
}

describe('public exports', () => {
  for (const pkg of ['protocol', 'server', 'client', 'react', 'cli']) {
    it(`packages/${pkg}`, () => {
      const actual = surface(pkg)
      if (process.env['PRINT_EXPORTS'] === '1') console.log(JSON.stringify(actual))
      assert.deepEqual(actual, EXPECTED[pkg])
    })
  }
})
