/**
 * An error the user can fix: a bad flag, a bad config file, a missing secret. bin.ts prints its
 * message without a stack trace and exits with `exitCode` (2, the usual "usage error" status,
 * so that scripts and process managers can tell "you called me wrong" from "I crashed").
 */
export class CliError extends Error {
  override readonly name = 'CliError'
  readonly exitCode: number

  constructor(message: string, options?: { exitCode?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.exitCode = options?.exitCode ?? 2
  }
}
