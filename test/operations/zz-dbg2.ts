import { suiteCleanup } from './cluster.js'
import { describeResult, runScenario } from './reload-scenario.js'
const c = suiteCleanup()
const log = (l: string) => console.log(new Date().toISOString(), l)
try {
  for (const d of [4000, 0]) {
    const r = await runScenario(c, { clients: 500, drainMs: d, action: 'reload', log })
    console.log(describeResult(r))
  }
} catch (e) { console.log(e) } finally { await c.run() }
