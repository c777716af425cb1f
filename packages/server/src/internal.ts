// Shared between holdfast packages (CLI, tests); not a public API: it may change without notice.
export { Gateway } from './gateway.js'
export { mintToken } from './auth/mint.js'
export { createJwtVerifier } from './auth/jwt.js'
export { resolveOptions, DEFAULTS, CHANNEL_DEFAULTS, type ResolvedOptions } from './options.js'
export { Counters } from './counters.js'
export { loadUws, type Uws } from './transport/load-uws.js'
export { EngineHost, IpcEngine, type IpcPort, type IpcEngineOptions } from './engine/ipc-engine.js'
export { MemoryEngine } from './engine/memory-engine.js'
