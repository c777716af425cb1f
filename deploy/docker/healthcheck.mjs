// The image's HEALTHCHECK: exit 0 when GET /healthz on this container's port answers 200 within
// 2 s, 1 otherwise. Node only (no curl or wget in the image). The port is HOLDFAST_PORT when set,
// otherwise 8080; a port given as a --port flag needs HOLDFAST_PORT as well (or a probe of your own).
const port = Number(process.env.HOLDFAST_PORT || 8080)
try {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) })
  process.exit(res.status === 200 ? 0 : 1)
} catch (err) {
  process.stderr.write(`healthcheck: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}
