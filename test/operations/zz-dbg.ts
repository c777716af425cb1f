import { suiteCleanup } from './cluster.js'
import { describeResult, runScenario } from './reload-scenario.js'
const c = suiteCleanup()
try {
  const r = await runScenario(c, { clients: Number(process.argv[3] ?? 100), drainMs: Number(process.argv[2] ?? 0), action: (process.argv[4] ?? 'reload') as 'reload', log: (l) => console.log(new Date().toISOString(), l) })
  console.log(describeResult(r))
  console.log(r.timeline.join(' '))
} catch (e) { console.log(e) } finally { await c.run() }
