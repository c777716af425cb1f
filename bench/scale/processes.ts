/**
 * Child processes of a bench script: tracked so that Ctrl-C or an error leaves no server or client
 * behind, and a server's JSON log counted (warnings, errors, the first few of them).
 */
import type { ChildProcess } from 'node:child_process'

const children = new Set<ChildProcess>()

/** Remember `child` until it exits; every tracked child is killed when this process exits. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

export interface ServerLog {
  warn: number
  error: number
  samples: string[]
}

/**
 * A writer for a server's stdout/stderr that counts pino lines at warn (40) and above; the
 * no-authentication warning is expected (anonymous bench clients) and not counted.
 */
export function countServerLog(logged: ServerLog): (chunk: Buffer) => void {
  let pending = ''
  return (chunk) => {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      const level = Number(/^\{"level":(\d+)/.exec(line)?.[1])
      if (!(level >= 40) || line.includes('NO AUTHENTICATION')) continue
      if (level >= 50) logged.error++
      else logged.warn++
      if (logged.samples.length < 5) logged.samples.push(line.slice(0, 300))
    }
  }
}
