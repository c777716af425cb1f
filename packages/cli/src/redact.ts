/**
 * Secrets kept out of the logs. Clients put connection tokens in the query string (`/ws?token=…`,
 * browsers cannot set headers on a WebSocket), and a misconfigured caller may do the same with an
 * API key; a log line is read by more people, and kept longer, than the secret should be.
 */

const REDACTED = '[redacted]'

/**
 * The URL with every query value replaced (names kept, so a log still shows *that* a token was
 * sent). No holdfast endpoint takes a query parameter worth logging, so none is spared: a list of
 * "secret" names would miss the next one a client invents.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const params = url
    .slice(q + 1)
    .split('&')
    .map((p) => {
      const eq = p.indexOf('=')
      return eq === -1 ? p : `${p.slice(0, eq)}=${REDACTED}`
    })
  return `${url.slice(0, q)}?${params.join('&')}`
}

/** Query values, and the credential of `apikey …`/`Bearer …`, in free text (error messages, stacks). */
export function redactText(text: string): string {
  return text
    .replace(/([?&][^=&\s"'#]+=)[^&\s"'#]+/g, `$1${REDACTED}`)
    .replace(/\b(apikey|bearer)([ \t]+)[^\s"',]+/gi, `$1$2${REDACTED}`)
}

interface RequestLike {
  method: string
  url: string
  host?: string
  ip?: string
  socket?: { remotePort?: number | undefined } | null
}

/** pino serializers for Fastify's request logs and for errors: the usual fields, secrets removed. */
export const redactingSerializers = {
  req(req: RequestLike): Record<string, unknown> {
    return { method: req.method, url: redactUrl(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort }
  },
  err(err: unknown): unknown {
    if (!(err instanceof Error)) return err
    const out: Record<string, unknown> = { type: err.name, message: redactText(err.message) }
    if (err.stack !== undefined) out['stack'] = redactText(err.stack)
    for (const [k, v] of Object.entries(err)) if (!(k in out)) out[k] = typeof v === 'string' ? redactText(v) : v
    if (err.cause !== undefined) out['cause'] = redactingSerializers.err(err.cause)
    return out
  },
}
