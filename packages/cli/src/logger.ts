import { pino, type Logger } from 'pino'
import type { LogFormat, ServeConfig } from './config.js'

/**
 * serve's logger: JSON lines (pino) for log collectors, or pino-pretty's coloured lines when a
 * person reads them (`--log-format auto`, the default, picks pretty when stdout is a terminal).
 * pino-pretty is loaded only then, and runs in this thread: no worker to flush at exit.
 */
export async function createLogger(config: Pick<ServeConfig, 'logLevel' | 'logFormat'>, base: Record<string, unknown>): Promise<Logger> {
  const pretty = config.logFormat === 'pretty' || (config.logFormat === 'auto' && process.stdout.isTTY === true)
  // Synchronous writes: the lines come out in the order they were logged and none is lost when the
  // process exits right after its last one ("stopped"); an asynchronous destination's write in
  // flight runs on libuv's thread pool and can be overtaken by the flush at exit. serve logs little
  // at info level (lifecycle, warnings, errors), so a write per line costs nothing that matters.
  if (!pretty) return pino({ level: config.logLevel, base }, pino.destination({ dest: 1, sync: true }))
  const { default: prettyStream } = await import('pino-pretty')
  const stream = prettyStream({ colorize: process.stdout.isTTY === true, ignore: 'pid,hostname,service', translateTime: 'SYS:HH:MM:ss.l', sync: true })
  return pino({ level: config.logLevel, base }, stream)
}

/**
 * A warning the operator must not miss (no authentication), said once per node or fleet: as a
 * banner when a person watches stderr, otherwise as one log line for the collector.
 */
export function warnLoudly(logger: Logger, message: string, stderr: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): void {
  if (stderr.isTTY !== true) {
    logger.warn(message)
    return
  }
  const bar = '!'.repeat(78)
  stderr.write(`\n${bar}\n!! holdfast WARNING\n!! ${message}\n${bar}\n\n`)
}
