import { readFileSync } from 'node:fs'

/**
 * Descriptors a gateway process keeps free for what it opens besides its clients' sockets:
 * handshakes it is refusing (each holds a socket until the 503 is written), the listening socket,
 * IPC to the primary, Redis, log files and Node's own.
 */
export const FD_RESERVE = 1000

/**
 * The soft limit on open files of this process (`ulimit -n`), from /proc/self/limits; undefined
 * where it cannot be read (not Linux) or is unlimited. Node has no getrlimit, hence the parse.
 */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  let text: string
  try {
    text = read()
  } catch {
    return undefined
  }
  const soft = /^Max open files\s+(\d+)\s/m.exec(text)?.[1]
  return soft === undefined ? undefined : Number(soft)
}

/**
 * The node connection cap a process can actually hold: its open-file limit less FD_RESERVE, when
 * that is below `configured`. Past the limit accept() fails with EMFILE and, under
 * `serve --workers N`, the primary keeps the accepted sockets it cannot hand over, so clients
 * hang until they time out with nothing logged; at the cap they get a clear 503 `node_full`.
 */
export function connectionCap(configured: number, limit: number | undefined): number {
  if (limit === undefined) return configured
  return Math.max(1, Math.min(configured, limit - FD_RESERVE))
}
