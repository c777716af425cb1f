import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { createHoldfast, type Engine } from '@holdfast/server'
import type { RedisEngine } from '@holdfast/server/redis'
import { acceptProxyProtocol, DEFAULTS, IpcEngine, loadUws, redactRedisUrl as redactUrl, resolveTrustProxy, UWS_PACKAGES } from '@holdfast/server/internal'
import { CliError } from './cli-error.js'
import type { ServeConfig } from './config.js'
import { runPrimary } from './cluster/primary.js'
import { isWorkerDrain, WORKER_ENV, WORKER_SESSION_SECRET_ENV, WORKER_WS_PORT_ENV, type WorkerReady } from './cluster/messages.js'
import { connectionCap, openFileLimit } from './fd-limit.js'
import { buildHttpApp, type Holdfast } from './http-app.js'
import { AdminDashboard } from './admin/index.js'
import { createLogger, warnLoudly } from './logger.js'
import { startMetricsListener, type MetricsListener } from './metrics-endpoint.js'

/** A port nobody listens on right now, for the WebSocket port every uws worker shares. */
async function freePort(host: string): Promise<number> {
  const { createServer } = await import('node:net')
  const probe = createServer()
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(0, host, resolve))
  const { port } = probe.address() as { port: number }
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  return port
}

export interface RunningServer {
  app: FastifyInstance
  holdfast: Holdfast
  logger: Logger
  /** `http://host:port` with the port actually bound. */
  url: string
  /** `ws://host:port/ws`: on --port with ws, on the WebSocket port with uws. */
  wsUrl: string
  /** The port of `--metrics-port`'s listener, when there is one. */
  metricsPort: number | undefined
  /** Drain the gateway (readyz turns 503 first), then close the HTTP server. */
  close(): Promise<void>
}

/**
 * The engine of `--engine redis`: this process's own Redis connections (each worker of
 * `--workers N` opens its own too), with engine errors that no caller sees on the node's log.
 * Loaded only here, so `serve --engine memory` never loads a Redis client.
 */
async function redisEngine(config: ServeConfig, logger: Logger): Promise<RedisEngine> {
  const { RedisEngine } = await import('@holdfast/server/redis')
  try {
    return new RedisEngine({ ...config.redis, url: config.redisUrl, onError: (err) => logger.warn({ err }, err instanceof Error ? err.message : 'redis engine error') })
  } catch (err) {
    // The engine validates its options and names the bad one ("redis" in the config file).
    if (err instanceof TypeError) throw new CliError(`invalid configuration: ${err.message}`, { cause: err })
    throw err
  }
}

/** Checked before anything starts: one message that says what to install, not a stack of loader errors. */
function assertUwsInstalled(): void {
  const loaded = loadUws()
  if ('error' in loaded) {
    throw new CliError(
      `--transport uws needs uWebSockets.js, an optional package that is not installed beside holdfast or has no binary for Node ${process.version}. ` +
        `Install it next to holdfast with "npm install ${UWS_PACKAGES[0]}", or use --transport ws. (${loaded.error})`,
    )
  }
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/**
 * Start the gateway and its HTTP server as configured, and print the listening line
 * (`holdfast listening on http://HOST:PORT (ws://HOST:PORT/ws) engine=memory`), which scripts and
 * tests wait for. Does not install signal handlers: that is `serve`'s job (see runServe).
 */
export async function startServer(
  config: ServeConfig,
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
  opts: { engine?: Engine; worker?: number } = {},
): Promise<RunningServer> {
  if (config.transport === 'uws') assertUwsInstalled()
  const logger = await createLogger(config, opts.worker === undefined ? { service: 'holdfast' } : { service: 'holdfast', worker: opts.worker })

  // The gateway closes only an engine it created itself, so serve closes this one after the drain.
  const owned = opts.engine === undefined && config.engine === 'redis' ? await redisEngine(config, logger) : undefined
  const engine = opts.engine ?? owned
  const closeOwned = (): Promise<void> => owned?.close().catch((err: unknown) => logger.warn({ err }, 'closing the redis engine failed')) ?? Promise.resolve()

  // A node cap above what the process can open fails silently (see connectionCap): hold it to the
  // open-file limit, and say so when that lowers a configured cap.
  const fdLimit = openFileLimit()
  const configuredCap = config.holdfast.maxConnections ?? DEFAULTS.maxConnections
  const maxConnections = connectionCap(configuredCap, fdLimit)
  if (maxConnections !== configuredCap) {
    if (config.holdfast.maxConnections !== undefined) {
      logger.warn({ configured: configuredCap, maxConnections, openFileLimit: fdLimit }, 'maxConnections is above the open-file limit (ulimit -n): lowered to what this process can hold')
    }
    config = { ...config, holdfast: { ...config.holdfast, maxConnections } }
  }

  let holdfast: Holdfast
  let admin: AdminDashboard | undefined
  try {
    // The dashboard adds its hooks (an `$admin:` namespace for the admin user only) to the gateway's options.
    admin = config.adminSecret === undefined ? undefined : new AdminDashboard({ secret: config.adminSecret, server: config.holdfast })
    holdfast = createHoldfast({ ...(admin?.serverOptions ?? config.holdfast), logger, ...(engine === undefined ? {} : { engine }) })
  } catch (err) {
    await closeOwned()
    // The server validates its options and names the bad one; from the CLI that is a usage error.
    if (err instanceof TypeError) throw new CliError(`invalid configuration: ${err.message}`, { cause: err })
    throw err
  }

  for (const warning of config.warnings) {
    if (!warning.startsWith('NO AUTHENTICATION')) logger.warn(warning)
    // Loud on purpose, and once: with --workers the primary says it for the fleet.
    else if (opts.worker === undefined) warnLoudly(logger, warning, io.stderr)
  }

  // An engine that cannot start yet (Redis away) is not fatal: the node serves, reports
  // not-ready on /readyz and recovers by itself, as an orchestrator expects.
  const startError = await holdfast.ready().then(
    () => undefined,
    (err: unknown) => err,
  )
  if (startError !== undefined) {
    // A Redis configuration that cannot work (a wrong master name, a server that is not a cluster
    // node, no Sentinel answering) is the operator's to fix: stop with a usage error naming it.
    if (owned !== undefined && startError instanceof TypeError) {
      await holdfast.close({ drainMs: 0 }).catch(() => {})
      await closeOwned()
      throw new CliError(`invalid configuration: ${startError.message.replace(/^holdfast: /, '')}`, { cause: startError })
    }
    logger.error({ err: startError }, 'engine not ready at startup')
  }
  if (owned !== undefined && !owned.isReady()) {
    logger.warn({ redis: redactUrl(config.redisUrl) }, 'Redis is not reachable yet: /readyz answers 503 until it is; the engine keeps reconnecting')
  }
  let app: FastifyInstance
  try {
    app = await buildHttpApp({
      holdfast,
      logger,
      webSocket: config.transport === 'ws',
      http: config.http,
      metrics: config.metricsPort === undefined ? config.metricsAuth : false,
      // Production serves the bundles, not their sources.
      sourceMaps: process.env['NODE_ENV'] !== 'production',
      ...(config.apiKey === undefined ? {} : { apiKey: config.apiKey }),
      ...(admin === undefined ? {} : { admin }),
    })
  } catch (err) {
    await holdfast.close({ drainMs: 0 }).catch(() => {})
    await closeOwned()
    // The API plugin refuses a key it cannot serve (e.g. with whitespace), naming the option.
    if (err instanceof TypeError) throw new CliError(`invalid configuration: ${err.message}`, { cause: err })
    throw err
  }
  const trusted = resolveTrustProxy(config.holdfast.trustProxy)
  if (config.proxyProtocol && trusted !== undefined) {
    acceptProxyProtocol(app.server, {
      trusted,
      onRefused: (reason, ip) => {
        holdfast.counters.inc('connections_rejected', 'proxy_protocol')
        logger.info({ reason, ip }, 'connection refused')
      },
    })
  }
  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    await holdfast.close({ drainMs: 0 }).catch(() => {})
    await closeOwned()
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') throw new CliError(`port ${config.port} on ${config.host} is already in use`, { cause: err })
    if (code === 'EADDRNOTAVAIL') throw new CliError(`cannot bind to ${config.host}: no such local address`, { cause: err })
    throw err
  }
  const { port } = app.server.address() as AddressInfo
  let metrics: MetricsListener | undefined
  if (config.metricsPort !== undefined) {
    try {
      metrics = await startMetricsListener({ holdfast, host: config.host, port: config.metricsPort, auth: config.metricsAuth, apiKey: config.apiKey, http: config.http })
    } catch (err) {
      await holdfast.close({ drainMs: 0 }).catch(() => {})
      await app.close()
      await closeOwned()
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EADDRINUSE') throw new CliError(`--metrics-port ${config.metricsPort} on ${config.host} is already in use`, { cause: err })
      throw err
    }
  }
  let wsPort = port
  if (config.transport === 'uws') {
    // uWebSockets.js owns its listening socket, so the WebSockets get a port of their own; the
    // HTTP side (probes, API, metrics, demo, dashboard) stays on Fastify at --port.
    try {
      wsPort = await holdfast.listen({ host: config.host, port: config.wsPort ?? (config.port === 0 ? 0 : port + 1) })
    } catch (err) {
      await holdfast.close({ drainMs: 0 }).catch(() => {})
      await app.close()
      await metrics?.close()
      await closeOwned()
      throw new CliError((err as Error).message, { cause: err })
    }
  }
  const host = urlHost(config.host)
  const url = `http://${host}:${port}`
  // A worker's readiness goes to its primary, which prints the one listening line for the fleet.
  if (opts.worker === undefined) {
    const extra = `${config.transport === 'uws' ? ' transport=uws' : ''}${metrics === undefined ? '' : ` metrics=http://${host}:${metrics.port}/metrics`}`
    io.stdout.write(`holdfast listening on ${url} (ws://${host}:${wsPort}/ws) engine=${config.engine}${extra}\n`)
  }
  logger.info({ url, ...(metrics === undefined ? {} : { metricsPort: metrics.port }), engine: config.engine, maxConnections: config.holdfast.maxConnections, ...(owned === undefined ? {} : { redis: redactUrl(config.redisUrl) }), auth: config.auth, api: config.apiKey !== undefined, ...(trusted === undefined ? {} : { trustProxy: trusted.list, proxyProtocol: config.proxyProtocol }), sources: config.sources }, 'holdfast started')

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= (async () => {
      // Drain first, with the HTTP server still up: /readyz must answer 503 during the drain so
      // that load balancers route new clients elsewhere while ours are told to reconnect.
      await holdfast.close(config.drainMs === undefined ? {} : { drainMs: config.drainMs })
      await app.close()
      await metrics?.close()
      await closeOwned()
    })()
    return closing
  }
  return { app, holdfast, logger, url, wsUrl: `ws://${host}:${wsPort}/ws`, metricsPort: metrics?.port, close }
}

const SIGNAL_EXIT: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 }

/** `holdfast serve`: start, then drain on SIGTERM/SIGINT and exit 0; a second signal exits at once. */
export async function runServe(config: ServeConfig): Promise<void> {
  let server: RunningServer | undefined
  let stopping = false
  // Installed before startup, so that a signal during startup is not Node's default instant kill
  // halfway through binding; with nothing connected yet there is nothing to drain.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping || server === undefined) {
      // Either the operator means it (a second Ctrl-C), or nothing has started: no drain to wait for.
      if (stopping) process.stderr.write(`holdfast: ${signal} again, exiting without waiting for the drain\n`)
      process.exit(stopping ? (SIGNAL_EXIT[signal] ?? 1) : 0)
    }
    stopping = true
    const running = server
    running.logger.info({ signal }, 'signal received, shutting down')
    // A drain that hangs (a bug, a stuck engine) must not keep a deploy waiting forever.
    const deadline = (config.drainMs ?? 10_000) + 10_000
    setTimeout(() => {
      process.stderr.write(`holdfast: shutdown did not finish within ${deadline} ms, exiting\n`)
      process.exit(1)
    }, deadline).unref()
    running.close().then(
      () => {
        running.logger.info('stopped')
        process.exit(0)
      },
      (err: unknown) => {
        running.logger.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  if (config.transport === 'uws' && config.workers > 1 && cluster.isPrimary) {
    // uWebSockets.js cannot take a socket handed over by the primary, so each worker listens on
    // the WebSocket port itself with SO_REUSEPORT (uWS's default on Linux) and the kernel spreads
    // connections over them. They must agree on the port: decide it here, for all of them.
    assertUwsInstalled()
    const wsPort = config.wsPort !== undefined && config.wsPort !== 0 ? config.wsPort : config.port !== 0 ? config.port + 1 : await freePort(config.host)
    config = { ...config, wsPort }
  }
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config)
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  const workerId = cluster.isWorker ? Number(process.env[WORKER_ENV]) : undefined
  if (workerId === undefined) {
    server = await startServer(config, { stdout: process.stdout, stderr: process.stderr })
    return
  }
  // A worker of `serve --workers N`: without Redis its engine is the primary's, over IPC; without
  // a configured session secret it uses the one its primary drew for all of its workers.
  const sharedWsPort = process.env[WORKER_WS_PORT_ENV]
  if (config.transport === 'uws' && sharedWsPort !== undefined) config = { ...config, wsPort: Number(sharedWsPort) }
  const sharedSecret = process.env[WORKER_SESSION_SECRET_ENV]
  if (config.holdfast.sessionSecret === undefined && sharedSecret !== undefined) {
    config = { ...config, holdfast: { ...config.holdfast, sessionSecret: sharedSecret } }
  }
  server = await startServer(config, { stdout: process.stdout, stderr: process.stderr }, {
    worker: workerId,
    ...(config.engine === 'memory' ? { engine: new IpcEngine() } : {}),
  })
  const running = server
  process.on('message', (m: unknown) => {
    if (!isWorkerDrain(m) || stopping) return
    stopping = true
    // Stop listening first: the primary (or, with uws, the kernel) then routes new connections to
    // the other workers, while ours are told to reconnect (restart) over the drain window.
    // (The gateway's own uws listener stops first thing in its drain.)
    running.app.server.close()
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
  const ready: WorkerReady = { hf: 'worker-ready', url: running.url, wsUrl: running.wsUrl, ...(config.drainMs === undefined ? {} : { drainMs: config.drainMs }) }
  process.send?.(ready)
}
