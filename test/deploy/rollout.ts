/**
 * A Kubernetes rolling update (maxSurge 1, maxUnavailable 0) reproduced step by step with the real
 * image and no cluster: N containers of the image (`--engine redis`, host network, the settings of
 * deploy/kubernetes) behind nginx rendered from deploy/nginx (standing in for the Service and the
 * ingress), under a load of subscribers and publishers connected through nginx from several
 * source addresses. Each old container is replaced the way the Deployment controller, the
 * endpoints controller and the kubelet would do it:
 *
 *   1. start a new container and wait until its readiness probe (/readyz) passes;
 *   2. add it to the upstream (the endpoints gain the ready pod);
 *   3. remove the old one from the upstream (the old pod is terminating: the endpoints drop it);
 *   4. the preStop sleep: the old container keeps serving the connections it has;
 *   5. SIGTERM (`podman stop -t <grace>`, the image's STOPSIGNAL): it drains over its window,
 *      its clients reconnect through nginx to the others and recover from Redis; it exits 0.
 *
 * Then every subscriber is held to exactly-once delivery of every acknowledged publication.
 * Used by test/deploy/image.podman.ts (small) and bench/container-rollout.ts (2,000 clients).
 */
import { mintToken } from '@holdfast/server/internal'
import { RedisServer } from '../support/redis-server.js'
import { renderSiteConfig, Nginx } from '../multinode/nginx.js'
import { until, type Cleanup } from '../operations/cluster.js'
import { Load, now, type LoadOutcome } from '../operations/load.js'
import { freePort } from '../support/ports.js'
import { Container } from './podman.js'

export const TOKEN_SECRET = 'rollout-token-secret-0123456789abcdef0123'
const SESSION_SECRET = 'rollout-session-secret-0123456789abcdef'

export interface RolloutOptions {
  image: string
  /** Containers before and after (the Deployment's replicas). @default 3 */
  replicas?: number
  clients: number
  channels?: number
  publishers?: number
  rate?: number
  processes?: number
  /** Source addresses 127.0.0.10 and up the subscribers spread over. @default 20 */
  sourceAddresses?: number
  /** The preStop sleep. */
  preStopMs: number
  /** HOLDFAST_DRAIN_MS of the containers. */
  drainMs: number
  /** terminationGracePeriodSeconds: `podman stop -t`. */
  graceSeconds: number
  /** Start the containers with HOLDFAST_TRUST_PROXY naming nginx (false: per-IP limits count nginx). @default true */
  trustProxy?: boolean
  /** Acknowledged publications per client process before and after the rollout. @default 200 */
  warmup?: number
  log?: (line: string) => void
}

export interface RolloutStep {
  /** From starting the new container to its /readyz 200. */
  readyMs: number
  /** From SIGTERM to the old container's exit. */
  stopMs: number
  exitCode: number
}

export interface RolloutResult extends LoadOutcome {
  replicas: number
  preStopMs: number
  drainMs: number
  graceSeconds: number
  steps: RolloutStep[]
  /** From the first new container's start to the last old one's exit. */
  actionMs: number
  /** From the start until every client was subscribed again (after the last step). */
  allBackMs: number
  /** Upgrades the containers refused, by reason (their `connection refused` log lines). */
  refusals: Record<string, number>
  /** nginx error-log lines: requests or connections over its per-client limits, and failed upstream attempts. */
  nginx: { limited: number; upstreamErrors: number }
}

interface Pod {
  container: Container
  port: number
}

async function ready(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200
  } catch {
    return false
  }
}

async function startPod(cleanup: Cleanup, image: string, redisUrl: string, drainMs: number, trustProxy: boolean): Promise<Pod> {
  const port = await freePort()
  const container = await Container.run(image, {
    name: 'holdfast-rollout',
    hostNetwork: true,
    env: {
      HOLDFAST_PORT: String(port),
      HOLDFAST_ENGINE: 'redis',
      HOLDFAST_REDIS_URL: redisUrl,
      HOLDFAST_TOKEN_SECRET: TOKEN_SECRET,
      HOLDFAST_SESSION_SECRET: SESSION_SECRET,
      ...(trustProxy ? { HOLDFAST_TRUST_PROXY: '127.0.0.1' } : {}),
      HOLDFAST_DRAIN_MS: String(drainMs),
      HOLDFAST_LOG_LEVEL: 'info',
    },
  })
  cleanup.after(() => container.remove())
  await until(`container on port ${port} ready`, () => ready(port), 60_000, 100).catch(async (err: Error) => {
    throw new Error(`${err.message}; logs: ${(await container.logs()).slice(-2000)}`)
  })
  return { container, port }
}

export async function runRollout(cleanup: Cleanup, opts: RolloutOptions): Promise<RolloutResult> {
  const log = opts.log ?? (() => {})
  const replicas = opts.replicas ?? 3
  const processes = opts.processes ?? 2
  const redis = await RedisServer.start()
  cleanup.after(() => redis.close())

  let pods = await Promise.all(Array.from({ length: replicas }, () => startPod(cleanup, opts.image, redis.url, opts.drainMs, opts.trustProxy ?? true)))
  const upstreams = (list: Pod[]): string[] => list.map((p) => `127.0.0.1:${p.port}`)
  let live = upstreams(pods)
  const nginx = await Nginx.serve(cleanup, (listen) => renderSiteConfig(listen, live))
  const route = async (list: Pod[]): Promise<void> => {
    live = upstreams(list)
    await nginx.reload((listen) => renderSiteConfig(listen, live))
  }
  log(`${replicas} containers (ports ${pods.map((p) => p.port).join(', ')}) behind nginx at ${nginx.wsUrl}`)

  const token = await mintToken({ secret: TOKEN_SECRET, sub: 'load', ttl: '2h' })
  const addresses = Array.from({ length: opts.sourceAddresses ?? 20 }, (_, i) => `127.0.0.${10 + i}`)
  const load = await Load.start(cleanup, {
    url: nginx.wsUrl,
    clients: opts.clients,
    processes,
    ...(opts.channels === undefined ? {} : { channels: opts.channels }),
    ...(opts.publishers === undefined ? {} : { publishers: opts.publishers }),
    ...(opts.rate === undefined ? {} : { rate: opts.rate }),
    localAddresses: addresses,
    clientOptions: { token },
  })
  log(`${opts.clients} clients subscribed through nginx from ${addresses.length} source addresses`)
  const warmup = opts.warmup ?? 200
  await load.publishMore(warmup, 'publications before the rollout')

  const refusals: Record<string, number> = {}
  const countRefusals = async (pod: Pod): Promise<void> => {
    for (const l of await pod.container.logLines(/^connection refused$/)) refusals[String(l['reason'])] = (refusals[String(l['reason'])] ?? 0) + 1
  }
  const actionAt = now()
  const steps: RolloutStep[] = []
  for (let i = 0; i < replicas; i++) {
    const old = pods[0] as Pod
    const startedAt = now()
    const fresh = await startPod(cleanup, opts.image, redis.url, opts.drainMs, opts.trustProxy ?? true)
    const readyMs = now() - startedAt
    // The endpoints gain the new pod, then lose the old one as the controller scales it down.
    pods = [...pods, fresh]
    await route(pods)
    pods = pods.filter((p) => p !== old)
    await route(pods)
    await new Promise((r) => setTimeout(r, opts.preStopMs))
    const { ms: stopMs, exitCode } = await old.container.stop(opts.graceSeconds)
    steps.push({ readyMs, stopMs, exitCode })
    await countRefusals(old)
    log(`step ${i + 1}: new container ready in ${(readyMs / 1000).toFixed(1)} s; old one drained and exited ${exitCode} ${(stopMs / 1000).toFixed(1)} s after SIGTERM`)
  }
  const actionMs = now() - actionAt
  await load.allBack(now() - 200)
  const allBackMs = now() - actionAt
  await load.publishMore(warmup, 'publications after the rollout')
  const outcome = await load.finish(actionAt)
  for (const pod of pods) await countRefusals(pod)
  const errors = nginx.errorLog().split('\n')
  const nginxCounts = { limited: errors.filter((l) => /limiting (requests|connections)/.test(l)).length, upstreamErrors: errors.filter((l) => /upstream/.test(l) && /\[error\]/.test(l)).length }
  return { ...outcome, refusals, nginx: nginxCounts, replicas, preStopMs: opts.preStopMs, drainMs: opts.drainMs, graceSeconds: opts.graceSeconds, steps, actionMs, allBackMs }
}
