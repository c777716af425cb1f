/**
 * The blue-green site for the one nginx runner (test/multinode/nginx.ts):
 * deploy/blue-green/holdfast-blue-green.conf.template as rendered by deploy/blue-green/render.sh
 * (the operator's own script). Start with `Nginx.serve(t, blueGreenSite(plan))`; switch colors or
 * the canary with `nginx.reload(blueGreenSite(next))`, which checks and reloads as an operator would.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from '../../packages/cli/test/helpers.js'
import type { SiteRenderer } from '../multinode/nginx.js'

export interface ColorPlan {
  live: 'blue' | 'green'
  /** Percentage of new connections to the other color. @default 0 */
  canary?: number
  blue: string[]
  green: string[]
}

/** Render the blue-green template with deploy/blue-green/render.sh. */
export async function renderBlueGreen(listen: string, plan: ColorPlan): Promise<string> {
  const args = [join(ROOT, 'deploy/blue-green/render.sh'), '--listen', listen, '--live', plan.live, '--canary', String(plan.canary ?? 0)]
  for (const s of plan.blue) args.push('--blue', s)
  for (const s of plan.green) args.push('--green', s)
  const { stdout } = await promisify(execFile)('bash', args, { timeout: 10_000 })
  return stdout
}

/** The site for `plan`, for `Nginx.serve` and `Nginx.reload`. */
export function blueGreenSite(plan: ColorPlan): SiteRenderer {
  return (listen) => renderBlueGreen(listen, plan)
}
