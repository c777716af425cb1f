// The CLI's pieces as a library, for tests and for tools that embed `holdfast serve`.
export { CliError } from './cli-error.js'
export { ENGINES, LOG_LEVELS, SETTINGS, envName, resolveServeConfig } from './config.js'
export type { EngineName, LogLevel, ReadFile, ServeConfig, SettingName, SettingSource } from './config.js'
export { parseDuration } from './duration.js'
export { DEFAULT_PUBLIC_DIR, buildHttpApp, type Holdfast, type HttpAppOptions } from './http-app.js'
export { runServe, startServer, type RunningServer } from './serve.js'
export { resolveTokenRequest, runToken, type TokenRequest } from './token.js'
