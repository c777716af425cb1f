#!/usr/bin/env node
// The entry point loads only what every command needs; each command's code (Fastify and the
// gateway for serve, the load generator for bench, the proxy for chaos) is imported when that
// command runs, so `holdfast --version` or `holdfast token` start in a few milliseconds.
import { CliError } from './cli-error.js'
import { MAIN_USAGE } from './usage.js'
import { cliVersion } from './version.js'

const HELP = new Set(['-h', '--help'])
const COMMANDS = new Set(['serve', 'token', 'reload', 'chaos', 'bench'])

async function help(command: string | undefined): Promise<string | undefined> {
  switch (command) {
    case undefined:
      return MAIN_USAGE
    case 'serve':
      return (await import('./usage.js')).serveUsage()
    case 'token':
      return (await import('./usage.js')).TOKEN_USAGE
    case 'reload':
      return (await import('./reload.js')).RELOAD_USAGE
    case 'chaos':
      return (await import('./chaos-command.js')).chaosUsage()
    case 'bench':
      return (await import('./bench-command.js')).benchUsage()
    default:
      return undefined
  }
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
    const text = await help(rest[0])
    if (text === undefined) throw new CliError(`unknown command "${rest[0] ?? ''}"\n\n${MAIN_USAGE}`)
    process.stdout.write(text)
    return
  }
  if (COMMANDS.has(command) && rest.some((a) => HELP.has(a))) {
    process.stdout.write((await help(command)) ?? MAIN_USAGE)
    return
  }
  switch (command) {
    case 'serve': {
      const [{ readFileSync }, { resolveServeConfig }, { runServe }] = await Promise.all([import('node:fs'), import('./config.js'), import('./serve.js')])
      await runServe(resolveServeConfig(rest, process.env, (path) => readFileSync(path, 'utf8')))
      return
    }
    case 'token':
      await (await import('./token.js')).runToken(rest, process.env)
      return
    case 'chaos':
      await (await import('./chaos-command.js')).runChaos(rest, process.env)
      return
    case 'bench':
      await (await import('./bench-command.js')).runBenchCommand(rest, process.env)
      return
    case 'reload':
      await (await import('./reload.js')).runReload(rest, process.env)
      return
    default:
      throw new CliError(`unknown command "${command}"\n\n${MAIN_USAGE}`)
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof CliError) {
    // Messages name the command already ("holdfast reload needs ..."): one prefix only.
    process.stderr.write(`holdfast: ${err.message.replace(/^holdfast:\s*/, '')}\n`)
    process.exit(err.exitCode)
  }
  process.stderr.write(`holdfast: unexpected error\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})
