import { join } from 'node:path'
import { build } from 'esbuild'

export interface Bundles {
  generator: string
  reference: string
  wsClient: string
}

/**
 * The scale bench's child programs, bundled to plain CommonJS so each child runs under bare node:
 * a process of tens of MiB, not one that compiles TypeScript at start-up (tsx), since a big run
 * starts dozens of them. uWebSockets.js stays external (a native module, resolved from the repo).
 */
export async function bundleChildren(root: string, outdir: string): Promise<Bundles> {
  await build({
    entryPoints: {
      generator: join(root, 'bench/scale/generator.ts'),
      reference: join(root, 'bench/scale/reference-uws.ts'),
      'ws-client': join(root, 'bench/scale/ws-client.ts'),
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outdir,
    outExtension: { '.js': '.cjs' },
    external: ['@trufflesuite/uws-js-unofficial', 'bufferutil', 'utf-8-validate'],
    logLevel: 'warning',
  })
  return { generator: join(outdir, 'generator.cjs'), reference: join(outdir, 'reference.cjs'), wsClient: join(outdir, 'ws-client.cjs') }
}
