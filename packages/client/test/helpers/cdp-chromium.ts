// Headless Chromium as a browser runs for users: started by hand with a DevTools port and attached
// with playwright-core's connectOverCDP({ noDefaults: true }), so Playwright applies none of its
// overrides to the default context. Playwright's own launch keeps pages focused and visible
// (focus emulation) and turns off background throttling; the lifecycle tests need a page that can
// be hidden, throttled, frozen (Page.setWebLifecycleState) and put in the back/forward cache.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext } from 'playwright-core'
import { CHROMIUM, CHROMIUM_ARGS } from '../../../../test/support/chromium.js'

export interface RealChromium {
  browser: Browser
  /** The default context: its pages get no Playwright overrides. */
  context: BrowserContext
  close(): Promise<void>
}

export async function launchRealChromium(extraArgs: string[] = []): Promise<RealChromium> {
  const profile = await mkdtemp(join(tmpdir(), 'holdfast-chromium-'))
  const proc: ChildProcess = spawn(
    CHROMIUM,
    [
      ...CHROMIUM_ARGS,
      '--remote-debugging-port=0',
      `--user-data-dir=${profile}`,
      ...extraArgs,
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const endpoint = await new Promise<string>((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`chromium printed no DevTools endpoint in 30 s: ${buf.slice(-500)}`)), 30_000)
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      buf += d
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(buf)
      if (m?.[1] !== undefined) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    proc.once('exit', (code) => reject(new Error(`chromium exited (${code}): ${buf.slice(-500)}`)))
  })
  proc.stderr?.resume()
  const browser = await chromium.connectOverCDP(endpoint, { noDefaults: true, isLocal: true })
  const context = browser.contexts()[0]
  if (context === undefined) throw new Error('chromium has no default context')
  return {
    browser,
    context,
    close: async () => {
      await browser.close().catch(() => {})
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGKILL')
        await exited
      }
      await rm(profile, { recursive: true, force: true, maxRetries: 5 })
    },
  }
}
