/**
 * deploy/kubernetes/: every overlay rendered by `kubectl kustomize` (offline), every object held
 * to its Kubernetes schema (kubernetes-models; the ServiceMonitor to prometheus-operator's), and
 * the invariants that decide whether a rollout loses connections:
 *
 * - terminationGracePeriodSeconds > preStop sleep + drain window + a shutdown margin;
 * - readiness on /readyz, liveness (and startup) on /healthz, on the container's port;
 * - a rolling update that never drops below the wanted capacity (maxUnavailable 0, maxSurge ≥ 1);
 * - every pod of a Deployment gets the session secret from the same Secret key that the render
 *   contains (so a session resumes on any pod); likewise the token secret and API key;
 * - the Service, PodDisruptionBudget, ServiceMonitor and HPA point at the Deployment's pods;
 * - the Ingress keeps WebSockets open longer than the ping interval and retries draining pods;
 * - the pod runs as the image's non-root user with a read-only root filesystem.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { promisify } from 'node:util'
import { parseAllDocuments } from 'yaml'
import { ROOT } from '../../packages/cli/test/helpers.js'
import { requireBinary } from '../multinode/fleet.js'

const KUBECTL = process.env['HOLDFAST_KUBECTL'] ?? '/usr/bin/kubectl'
const OVERLAYS = join(ROOT, 'deploy/kubernetes/overlays')
/** What the process needs after its drain: closing the engine, the last log lines. */
const SHUTDOWN_MARGIN_S = 5
/** The gateway's default ping interval: idle proxy timeouts must be longer. */
const PING_INTERVAL_S = 25
const DEFAULT_DRAIN_MS = 10_000

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string> }

async function render(dir: string): Promise<Obj[]> {
  const { stdout } = await promisify(execFile)(KUBECTL, ['kustomize', dir], { timeout: 60_000 })
  return parseAllDocuments(stdout).map((d) => d.toJSON() as Obj).filter((o) => o !== null)
}

/** The kubernetes-models class for an object's apiVersion and kind (prometheus-operator's for monitoring.coreos.com). */
async function modelOf(o: Obj): Promise<{ validate(): void }> {
  const module = o.apiVersion.startsWith('monitoring.coreos.com/')
    ? `@kubernetes-models/prometheus-operator/${o.apiVersion}`
    : `kubernetes-models/${o.apiVersion}`
  const models = (await import(module)) as Record<string, new (data: unknown) => { validate(): void }>
  const Model = models[o.kind]
  assert.ok(Model !== undefined, `no schema for ${o.apiVersion} ${o.kind}`)
  return new Model(o)
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v)
}

const overlays = existsSync(OVERLAYS) ? readdirSync(OVERLAYS) : []

describe('deploy/kubernetes', () => {
  test('there are overlays for one node and for a fleet', () => {
    assert.deepEqual(overlays.sort(), ['fleet', 'single'])
  })

  for (const overlay of overlays) {
    describe(`overlay ${overlay}`, () => {
      let objects: Obj[] | undefined
      const rendered = async (t: TestContext): Promise<Obj[] | undefined> => {
        if (!requireBinary(t, KUBECTL, 'kubectl')) return undefined
        objects ??= await render(join(OVERLAYS, overlay))
        return objects
      }
      const one = (objs: Obj[], kind: string): Obj => {
        const found = objs.filter((o) => o.kind === kind)
        assert.equal(found.length, 1, `one ${kind}`)
        return found[0] as Obj
      }

      test('renders, and every object is valid against its schema', async (t) => {
        const objs = await rendered(t)
        if (objs === undefined) return
        const kinds = objs.map((o) => o.kind).sort()
        for (const kind of ['ConfigMap', 'Deployment', 'Ingress', 'PodDisruptionBudget', 'Secret', 'Service', 'ServiceMonitor']) assert.ok(kinds.includes(kind), `${overlay} has a ${kind}`)
        for (const o of objs) {
          const model = await modelOf(o)
          assert.doesNotThrow(() => model.validate(), `${o.kind} ${o.metadata.name}`)
        }
      })

      test('grace period > preStop + drain window + margin; probes on /readyz and /healthz; capacity kept during a rollout', async (t) => {
        const objs = await rendered(t)
        if (objs === undefined) return
        const d = one(objs, 'Deployment')
        const pod = d.spec.template.spec
        const c = pod.containers.find((x: { name: string }) => x.name === 'holdfast')
        assert.ok(c !== undefined)
        const env = new Map<string, { value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>(c.env.map((e: { name: string }) => [e.name, e]))
        const drainS = Number(env.get('HOLDFAST_DRAIN_MS')?.value ?? DEFAULT_DRAIN_MS) / 1000
        const preStopS = c.lifecycle?.preStop?.sleep?.seconds
        assert.ok(typeof preStopS === 'number' && preStopS >= 5, `a preStop sleep of at least 5 s lets endpoints drop the pod first (got ${preStopS})`)
        const grace = pod.terminationGracePeriodSeconds
        assert.ok(grace > preStopS + drainS + SHUTDOWN_MARGIN_S, `terminationGracePeriodSeconds ${grace} > preStop ${preStopS} + drain ${drainS} + ${SHUTDOWN_MARGIN_S}`)

        const port = c.ports.find((p: { name: string }) => p.name === 'http')
        assert.equal(String(port.containerPort), env.get('HOLDFAST_PORT')?.value ?? '8080', 'the container port is the one serve listens on')
        assert.deepEqual([c.readinessProbe.httpGet.path, c.readinessProbe.httpGet.port], ['/readyz', 'http'])
        assert.deepEqual([c.livenessProbe.httpGet.path, c.livenessProbe.httpGet.port], ['/healthz', 'http'])
        assert.equal(c.startupProbe?.httpGet?.path ?? '/healthz', '/healthz')
        // A draining pod must leave the endpoints quickly even where the controller lags.
        assert.ok(c.readinessProbe.periodSeconds * c.readinessProbe.failureThreshold <= preStopS, 'readiness notices a drain within the preStop sleep')

        const ru = d.spec.strategy.rollingUpdate
        assert.equal(d.spec.strategy.type, 'RollingUpdate')
        assert.equal(String(ru.maxUnavailable), '0', 'no ready pod is taken away before its replacement is ready')
        assert.ok(Number.parseInt(String(ru.maxSurge), 10) >= 1, 'a new pod is started first')

        assert.equal(pod.securityContext.runAsNonRoot, true)
        assert.equal(pod.securityContext.runAsUser, 1000, "the image's user")
        assert.equal(c.securityContext.readOnlyRootFilesystem, true)
        assert.equal(c.securityContext.allowPrivilegeEscalation, false)
      })

      test('every pod gets the same session secret, token secret and API key from a Secret in the render', async (t) => {
        const objs = await rendered(t)
        if (objs === undefined) return
        const secrets = new Map(objs.filter((o) => o.kind === 'Secret').map((s) => [s.metadata.name, s]))
        for (const d of objs.filter((o) => o.kind === 'Deployment')) {
          const containers = d.spec.template.spec.containers as Array<{ env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }> }>
          for (const name of ['HOLDFAST_SESSION_SECRET', 'HOLDFAST_TOKEN_SECRET', 'HOLDFAST_API_KEY']) {
            const refs = containers.map((c) => c.env.find((e) => e.name === name))
            for (const ref of refs) {
              assert.equal(ref?.value, undefined, `${name} is not written into the Deployment`)
              const r = ref?.valueFrom?.secretKeyRef
              assert.ok(r !== undefined, `${name} comes from a Secret`)
              const secret = secrets.get(r.name)
              assert.ok(secret !== undefined, `${name}: Secret ${r.name} is part of the render`)
              const value = Buffer.from(secret.data?.[r.key] ?? '', 'base64').toString()
              assert.ok(value.length >= 32, `${name}: key ${r.key} holds a value of 32+ characters`)
            }
            assert.equal(new Set(refs.map((r) => `${r?.valueFrom?.secretKeyRef?.name}/${r?.valueFrom?.secretKeyRef?.key}`)).size, 1, `${name}: one source for every container`)
          }
          if (overlay === 'fleet') {
            const env = containers[0]?.env ?? []
            assert.equal(env.find((e) => e.name === 'HOLDFAST_ENGINE')?.value, 'redis')
            assert.ok(env.find((e) => e.name === 'HOLDFAST_REDIS_URL')?.valueFrom?.secretKeyRef !== undefined, 'the Redis URL (with its password) comes from the Secret')
            assert.ok(d.spec.replicas >= 2)
          }
        }
      })

      test('Service, PodDisruptionBudget, ServiceMonitor and HPA point at the pods; the Ingress suits long-lived WebSockets', async (t) => {
        const objs = await rendered(t)
        if (objs === undefined) return
        const d = one(objs, 'Deployment')
        const podLabels = d.spec.template.metadata.labels as Record<string, string>
        assert.ok(matches(d.spec.selector.matchLabels, podLabels))
        const svc = one(objs, 'Service')
        assert.ok(matches(svc.spec.selector, podLabels), 'the Service selects the pods')
        assert.ok(svc.spec.ports.some((p: { targetPort: string; name: string }) => p.targetPort === 'http' && p.name === 'http'))
        const pdb = one(objs, 'PodDisruptionBudget')
        assert.ok(matches(pdb.spec.selector.matchLabels, podLabels), 'the PDB selects the pods')
        assert.equal(pdb.spec.maxUnavailable, 1, 'one voluntary disruption at a time')
        const sm = one(objs, 'ServiceMonitor')
        assert.ok(matches(sm.spec.selector.matchLabels, svc.metadata.labels), 'the ServiceMonitor selects the Service')
        assert.deepEqual(sm.spec.endpoints.map((e: { port: string; path: string }) => [e.port, e.path]), [['http', '/metrics']])
        const ing = one(objs, 'Ingress')
        const a = ing.metadata.annotations ?? {}
        assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) > PING_INTERVAL_S * 2, 'idle WebSockets outlive ingress-nginx read timeouts')
        assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-send-timeout']) > PING_INTERVAL_S * 2)
        assert.match(a['nginx.ingress.kubernetes.io/proxy-next-upstream'] ?? '', /http_503/, 'a draining pod\'s 503 is retried on another pod')
        const paths = ing.spec.rules.flatMap((r: { http: { paths: Array<{ path: string; backend: { service: { name: string } } }> } }) => r.http.paths)
        assert.ok(paths.some((p: { path: string; backend: { service: { name: string } } }) => p.path === '/ws' && p.backend.service.name === svc.metadata.name))
        const hpas = objs.filter((o) => o.kind === 'HorizontalPodAutoscaler')
        assert.equal(hpas.length, overlay === 'fleet' ? 1 : 0, 'an HPA only where nodes share an engine')
        for (const h of hpas) {
          assert.deepEqual([h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name], ['Deployment', d.metadata.name])
          assert.ok(h.spec.minReplicas >= 2, 'a fleet keeps a second pod to drain to')
        }
      })
    })
  }
})
