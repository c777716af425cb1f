import { cliVersion } from '../version.js'
import { runBench, type RunIO } from './runner.js'
import { RSS_NOISE_BYTES, type BenchConfig, type BenchReport, type CompareRatio, type CompareReport } from './types.js'

function div(a: number | null | undefined, b: number | null | undefined): number | null {
  // A ratio to zero or to a negative figure (an RSS delta lost in the noise) means nothing.
  if (a == null || b == null || b <= 0 || a < 0 || !Number.isFinite(a) || !Number.isFinite(b)) return null
  return Math.round((a / b) * 1000) / 1000
}

/**
 * holdfast's figure over the peer's, for each figure the issue compares: holdfast (ws transport)
 * against every peer, and holdfast on uWebSockets.js against raw uWebSockets.js pub/sub.
 */
export function compareRatios(runs: BenchReport[]): CompareRatio[] {
  const byKind = new Map(runs.map((r) => [r.target.kind, r]))
  const out: CompareRatio[] = []
  const holdfast = byKind.get('holdfast')
  if (holdfast !== undefined) out.push(...ratios(holdfast, runs.filter((r) => r.target.kind !== 'holdfast' && r.target.kind !== 'holdfast-uws')))
  const onUws = byKind.get('holdfast-uws')
  const uws = byKind.get('uws')
  if (onUws !== undefined && uws !== undefined) out.push(...ratios(onUws, [uws]))
  return out
}

/** One holdfast run's figures over each peer's. */
export function ratios(holdfast: BenchReport, peers: BenchReport[]): CompareRatio[] {
  return peers.map((p) => ({
    holdfast: holdfast.target.kind as CompareRatio['holdfast'],
    peer: p.target.kind as CompareRatio['peer'],
    cpuPerDelivery: div(holdfast.server?.cpuMicrosPerDelivery, p.server?.cpuMicrosPerDelivery),
    // A peer's growth below the readings' noise gives a ratio of noise (see the run's warning).
    rssPerConnection: (p.server?.rssPerConnectionBytes ?? 0) < RSS_NOISE_BYTES ? null : div(holdfast.server?.rssPerConnectionBytes, p.server?.rssPerConnectionBytes),
    p99: div(holdfast.delivery.latencyMs?.p99, p.delivery.latencyMs?.p99),
    deliveriesPerSecond: div(holdfast.delivery.perSecond, p.delivery.perSecond),
    clientsReached: holdfast.shootout === null ? null : div(holdfast.shootout.reached, p.shootout?.reached),
  }))
}

/** Matches startUws's refusal: the one peer that may be missing on a platform without its binary. */
const UWS_UNAVAILABLE = /uWebSockets\.js cannot be loaded|transport "uws" is not available/

/**
 * `--compare`: the same scenario against each server, one after the other (never together: they
 * would share the cores), each started by the bench in its own process and measured from /proc
 * the same way. uWebSockets.js is skipped, with the reason, only when its native binary does not
 * load on this platform; any other failure fails the comparison.
 */
export async function runCompare(cfg: BenchConfig, io: RunIO): Promise<CompareReport> {
  const startedAt = new Date().toISOString()
  const runs: BenchReport[] = []
  const skipped: Record<string, string> = {}
  for (const server of cfg.servers) {
    try {
      runs.push(await runBench({ ...cfg, url: undefined, serverPids: [], server, compare: false }, io))
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      if ((server === 'uws' || server === 'holdfast-uws') && UWS_UNAVAILABLE.test(message)) {
        skipped[server] = message
        continue
      }
      throw err
    }
  }
  return {
    tool: 'holdfast bench',
    version: cliVersion(),
    startedAt,
    mode: 'compare',
    benchMode: cfg.mode,
    runs,
    ratios: compareRatios(runs),
    skipped,
  }
}
