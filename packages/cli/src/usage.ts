import { LOG_LEVELS, SETTINGS, envName, type SettingName } from './config.js'

const VALUE_NAMES: Readonly<Record<SettingName, string>> = {
  port: 'PORT',
  host: 'HOST',
  engine: 'NAME',
  redisUrl: 'URL',
  workers: 'N',
  transport: 'NAME',
  wsPort: 'PORT',
  config: 'FILE',
  tokenSecret: 'S',
  apiKey: 'K',
  adminSecret: 'A',
  sessionSecret: 'S',
  publicUrl: 'URL',
  pingInterval: 'DURATION',
  drainMs: 'MS',
  logLevel: 'LEVEL',
  logFormat: 'FORMAT',
  pidFile: 'FILE',
  trustProxy: 'CIDR[,CIDR]',
  proxyProtocol: '',
  metricsPort: 'PORT',
  metricsAuth: 'MODE',
  proxyUrl: 'URL',
  webhookUrl: 'URL',
  webhookSecret: 'S',
}

export const MAIN_USAGE = `Usage: holdfast <command> [options]

Commands:
  serve       run the gateway (WebSocket at /ws, /healthz, /readyz, demo page at /)
  token       mint an HS256 connection token for development
  reload      rolling reload of a "serve --workers N" primary (SIGHUP to its --pid-file)
  bench       load test: connections, delivery latency, lost/duplicated, --compare (docs/bench.md)
  chaos       TCP proxy that injects latency, resets, blackholes... (docs/chaos.md)
  help [cmd]  show help for a command

Options:
  -h, --help     show help
  -v, --version  print the version

Run "holdfast help <command>" (or "holdfast <command> --help") for a command's flags. Docs: docs/cli.md
`

/** Generated from the SETTINGS table so the help can never list a flag that does not exist. */
export function serveUsage(): string {
  const rows = (Object.keys(SETTINGS) as SettingName[]).map((name) => {
    const s = SETTINGS[name]
    return [`  --${s.flag} ${VALUE_NAMES[name]}`.trimEnd(), envName(name), s.help] as const
  })
  const w0 = Math.max(...rows.map((r) => r[0].length))
  const w1 = Math.max(...rows.map((r) => r[1].length))
  const lines = rows.map(([flag, env, help]) => `${flag.padEnd(w0)}  ${env.padEnd(w1)}  ${help}`)
  return `Usage: holdfast serve [options]

Runs the gateway: WebSocket at /ws, GET /healthz, GET /readyz, the demo page at /.
Every flag can also be set by its environment variable or a key of the --config file;
a flag beats the variable, the variable beats the file, the file beats the default.

${lines.join('\n')}

Without --token-secret (or "jwt" in the config file) anonymous clients are accepted and a
warning is printed; with NODE_ENV=production serve refuses to start without authentication.
Log levels: ${LOG_LEVELS.join(', ')}. SIGTERM/SIGINT drain the connections, then exit 0.
`
}

export const TOKEN_USAGE = `Usage: holdfast token --sub USER [--secret S] [--ttl 1h] [--info JSON] [--channels a,b]

Prints an HS256 connection token for "holdfast serve --token-secret S".

  --sub USER       user id (the "sub" claim); required
  --secret S       signing secret (default: $HOLDFAST_TOKEN_SECRET)
  --ttl DURATION   lifetime, e.g. 90s, 30m, 1h, 7d; a bare number is seconds (default 1h)
  --info JSON      public info shown in presence and join/leave, e.g. '{"name":"Alice"}'
  --channels a,b   channels the server subscribes the connection to at connect
`
