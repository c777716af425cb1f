import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { CliError } from './cli-error.js'

/**
 * `holdfast reload --pid-file F`: ask a `serve --workers N` primary for a rolling reload
 * (SIGHUP). The primary replaces its workers one at a time; a new worker that fails to start
 * (bad config, broken build) aborts the reload and the old workers keep serving.
 */
export function runReload(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): void {
  let values: { 'pid-file'?: string | undefined }
  try {
    ;({ values } = parseArgs({ args: [...argv], options: { 'pid-file': { type: 'string' } }, strict: true }))
  } catch (err) {
    throw new CliError((err as Error).message, { cause: err })
  }
  const file = values['pid-file'] ?? env['HOLDFAST_PID_FILE']
  if (file === undefined || file === '') throw new CliError('holdfast reload needs --pid-file FILE (the file given to serve --pid-file)')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  const pid = Number(text.trim())
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new CliError(`${file} does not hold a process id`)
  try {
    process.kill(pid, 'SIGHUP')
  } catch (err) {
    throw new CliError(`cannot signal process ${pid} from ${file}: ${(err as Error).message}`, { cause: err })
  }
  process.stdout.write(`holdfast: rolling reload requested from process ${pid}\n`)
}
