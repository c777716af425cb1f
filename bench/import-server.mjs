// What an application on the memory engine loads: `import('@holdfast/server')` and a gateway made
// and closed. Run through bench/cli-startup.ts, which times it and counts the files it reads:
//   node --import tsx bench/cli-startup.ts --bin bench/import-server.mjs --runs 20 -- run
const { createHoldfast } = await import('@holdfast/server')
const hf = createHoldfast({ logger: false })
await hf.close()
