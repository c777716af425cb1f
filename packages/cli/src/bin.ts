#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { benchUsage, runBenchCommand } from './bench-command.js'
import { chaosUsage, runChaos } from './chaos-command.js'
import { CliError } from './cli-error.js'
import { resolveServeConfig } from './config.js'
import { runServe } from './serve.js'
import { runReload } from './reload.js'
import { runToken } from './token.js'
import { MAIN_USAGE, TOKEN_USAGE, serveUsage } from './usage.js'
import { cliVersion } from './version.js'

const HELP = new Set(['-h', '--help'])

function help(command: string | undefined): string | undefined {
  if (command === undefined) return MAIN_USAGE
  if (command === 'serve') return serveUsage()
  if (command === 'token') return TOKEN_USAGE
  if (command === 'chaos') return chaosUsage()
  if (command === 'bench') return benchUsage()
  return undefined
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (command === undefined) {
    process.stderr.write(MAIN_USAGE)
    process.exitCode = 2
    return
  }
  if (HELP.has(command)) {
    process.stdout.write(MAIN_USAGE)
    return
  }
  if (command === '-v' || command === '--version' || command === 'version') {
    process.stdout.write(`${cliVersion()}\n`)
    return
  }
  if (command === 'help') {
    const text = help(rest[0])
    if (text === undefined) throw new CliError(`unknown command "${rest[0] ?? ''}"\n\n${MAIN_USAGE}`)
    process.stdout.write(text)
    return
  }
  if ((command === 'serve' || command === 'token' || command === 'chaos' || command === 'bench') && rest.some((a) => HELP.has(a))) {
    process.stdout.write(help(command) ?? MAIN_USAGE)
    return
  }
  switch (command) {
    case 'serve':
      await runServe(resolveServeConfig(rest, process.env, (path) => readFileSync(path, 'utf8')))
      return
    case 'token':
      await runToken(rest, process.env)
      return
    case 'chaos':
      await runChaos(rest, process.env)
      return
    case 'bench':
      await runBenchCommand(rest, process.env)
      return
    case 'reload':
      runReload(rest, process.env)
      return
    default:
      throw new CliError(`unknown command "${command}"\n\n${MAIN_USAGE}`)
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof CliError) {
    process.stderr.write(`holdfast: ${err.message}\n`)
    process.exit(err.exitCode)
  }
  process.stderr.write(`holdfast: unexpected error\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})
