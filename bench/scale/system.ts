/**
 * What the scale bench reads from the kernel: processes by parent, kernel memory (slab and TCP
 * buffer pages) and socket counts. Linux only, as the bench is.
 */
import { readdirSync, readFileSync } from 'node:fs'

/** Processes whose parent is `pid` and whose command line matches `match`. */
export function childrenOf(pid: number, match: (cmdline: string, comm: string) => boolean): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8')
      if (/^PPid:\s+(\d+)$/m.exec(status)?.[1] !== String(pid)) continue
      const comm = /^Name:\s+(.*)$/m.exec(status)?.[1] ?? ''
      if (match(readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' '), comm)) out.push(Number(name))
    } catch {
      // the process went away while we looked
    }
  }
  return out.sort((a, b) => a - b)
}

export interface KernelSample {
  /** Slab memory (kernel objects: sockets, inodes, dentries, epoll items...), bytes. */
  slabBytes: number
  /** Pages the TCP stack holds for socket buffers (/proc/net/sockstat "mem"), as bytes. */
  tcpBufferBytes: number
  /** TCP sockets in use (both ends of every loopback connection count). */
  tcpInUse: number
  tcpTimeWait: number
  memAvailableBytes: number
}

const PAGE = 4096

export function readKernel(): KernelSample {
  const meminfo = readFileSync('/proc/meminfo', 'utf8')
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1] ?? 0) * 1024
  const sockstat = readFileSync('/proc/net/sockstat', 'utf8')
  const tcp = /^TCP: inuse (\d+) orphan \d+ tw (\d+) alloc \d+ mem (\d+)/m.exec(sockstat)
  return {
    slabBytes: kb('Slab'),
    tcpBufferBytes: Number(tcp?.[3] ?? 0) * PAGE,
    tcpInUse: Number(tcp?.[1] ?? 0),
    tcpTimeWait: Number(tcp?.[2] ?? 0),
    memAvailableBytes: kb('MemAvailable'),
  }
}

/** The load average over the last minute: how busy the machine was around a run. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])
}

/** user + system CPU of several processes, and the system part alone, µs (USER_HZ = 100). */
export function cpuSplit(pids: readonly number[]): { totalUs: number; systemUs: number } {
  let totalUs = 0
  let systemUs = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const user = Number(fields[11]) * 10_000
      const system = Number(fields[12]) * 10_000
      totalUs += user + system
      systemUs += system
    } catch {
      // gone
    }
  }
  return { totalUs, systemUs }
}
