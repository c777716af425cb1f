import { readFileSync } from 'node:fs'

/**
 * CPU and memory of a local process read from /proc, so that any server can be measured from the
 * outside the same way (holdfast and its peers alike, and a `holdfast serve` started by hand with
 * `--server-pid`), without asking it anything. Linux only: elsewhere the server figures are null.
 * A server may be several processes (`serve --workers N`: a primary and its workers); they are
 * read together and summed, and each one is kept for the per-process figures.
 */
export interface ProcSample {
  /** user + system CPU since the process started, µs. */
  cpuUs: number
  rssBytes: number
}

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat. It is 100 on every Linux ABI in use. */
const CLOCK_TICKS_PER_SECOND = 100

export function readProcSample(pid: number): ProcSample | undefined {
  let stat: string
  let status: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    status = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return undefined
  }
  // The command name (field 2) is in parentheses and may hold spaces or ')': count fields from the
  // last ')'. After it, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12])
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (!Number.isFinite(ticks) || rss === null) return undefined
  return { cpuUs: (ticks * 1_000_000) / CLOCK_TICKS_PER_SECOND, rssBytes: Number(rss[1]) * 1024 }
}

/** Several processes read at one moment: their sum, and each of them in the order asked. */
export interface ServerSample extends ProcSample {
  each: ProcSample[]
}

/** undefined when any of the processes cannot be read (gone, or not Linux). */
export function readServerSample(pids: readonly number[]): ServerSample | undefined {
  if (pids.length === 0) return undefined
  const each: ProcSample[] = []
  for (const pid of pids) {
    const s = readProcSample(pid)
    if (s === undefined) return undefined
    each.push(s)
  }
  return { cpuUs: each.reduce((n, s) => n + s.cpuUs, 0), rssBytes: each.reduce((n, s) => n + s.rssBytes, 0), each }
}

export function procStatsAvailable(pid: number): boolean {
  return readProcSample(pid) !== undefined
}
