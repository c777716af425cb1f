import cliProgress from 'cli-progress'

export interface ProgressFigures {
  open: number
  perSecond: number
  p99: number | null
}

/**
 * The progress bar on stderr (stdout stays clean for the summary, or for `--json -`). Only on a
 * terminal: in CI logs and pipes a redrawn bar is noise, so there each phase prints one line, and
 * `--quiet` prints nothing at all.
 */
export class Progress {
  private bar: cliProgress.SingleBar | undefined
  private readonly tty: boolean

  constructor(
    private readonly stream: NodeJS.WriteStream | NodeJS.WritableStream,
    private readonly quiet: boolean,
    private readonly label: string,
  ) {
    this.tty = !quiet && (stream as NodeJS.WriteStream).isTTY === true
  }

  phase(name: string, total: number, unit: string): void {
    if (this.quiet) return
    if (!this.tty) {
      this.stream.write(`holdfast bench [${this.label}] ${name}: ${total} ${unit}\n`)
      return
    }
    this.bar?.stop()
    this.bar = new cliProgress.SingleBar(
      {
        stream: this.stream as NodeJS.WriteStream,
        format: `${this.label} {phase} |{bar}| {value}/{total} ${unit} | open {open} | {rate}/s | p99 {p99} ms`,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    )
    this.bar.start(total, 0, { phase: name, open: 0, rate: 0, p99: '-' })
  }

  update(value: number, f: ProgressFigures): void {
    this.bar?.update(Math.round(value), { open: f.open, rate: f.perSecond, p99: f.p99 === null ? '-' : f.p99.toFixed(1) })
  }

  note(line: string): void {
    if (this.quiet) return
    if (this.bar !== undefined) {
      this.bar.stop()
      this.bar = undefined
    }
    this.stream.write(`holdfast bench [${this.label}] ${line}\n`)
  }

  stop(): void {
    this.bar?.stop()
    this.bar = undefined
  }
}
