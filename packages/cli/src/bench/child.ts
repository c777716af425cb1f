import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/**
 * Fork a sibling module of the bench (a worker or a server process) so that it runs however this
 * one runs: compiled `.js` from dist, or `.ts` source through tsx. Only the loader flags are
 * passed on: the parent may be a test runner whose own flags (`--test`, reporters) must not start
 * a test run in the child.
 */
export function forkSibling(name: string, opts: { env?: NodeJS.ProcessEnv; execArgv?: string[] } = {}): ChildProcess {
  const fromSource = import.meta.url.endsWith('.ts')
  const file = fileURLToPath(new URL(`${name}${fromSource ? '.ts' : '.js'}`, import.meta.url))
  return fork(file, [], {
    execArgv: [...loaderArgs(fromSource), ...(opts.execArgv ?? [])],
    env: opts.env ?? process.env,
    // Advanced serialization carries typed arrays (the publication logs) without a JSON detour.
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
}

const WITH_VALUE = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader', '--conditions', '-C'])

function loaderArgs(fromSource: boolean): string[] {
  const out: string[] = []
  const argv = process.execArgv
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (WITH_VALUE.has(a) && i + 1 < argv.length) {
      out.push(a, argv[++i] as string)
      continue
    }
    const eq = a.indexOf('=')
    if (eq > 0 && WITH_VALUE.has(a.slice(0, eq))) out.push(a)
  }
  if (fromSource && !out.some((a) => a.includes('tsx'))) out.push('--import', 'tsx')
  if (fromSource && !out.some((a) => a.includes('source'))) out.push('--conditions=source')
  return out
}

/** Kill a child we started, and wait (briefly) for it to be gone. */
export async function killChild(child: ChildProcess, ms = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), ms)
  await gone
  clearTimeout(timer)
}
