import { errorCodeName, errorCodes, type ErrorCodeName } from './code-core.js'
import type { ReplyError } from './messages.js'

/**
 * The error every holdfast package throws or rejects with. `code` is a stable name from
 * `ErrorCodes` (documented in docs/errors.md and docs/protocol.md); `wireCode` is its number.
 */
export class HoldfastError extends Error {
  override readonly name = 'HoldfastError'
  readonly code: ErrorCodeName
  readonly wireCode: number
  readonly temporary: boolean

  constructor(code: ErrorCodeName, message: string, options?: { cause?: unknown; temporary?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.wireCode = errorCodes[code].code
    this.temporary = options?.temporary ?? errorCodes[code].temporary
  }

  /** The `error` object of a reply frame. */
  toReply(): ReplyError {
    return { code: this.wireCode, message: this.message, temporary: this.temporary }
  }

  /** Rebuild an error from a reply frame (unknown codes become `internal`, keeping the number in the message). */
  static fromReply(error: ReplyError): HoldfastError {
    const name = errorCodeName(error.code)
    if (name === undefined) {
      return new HoldfastError('internal', `server error ${error.code}: ${error.message}`, { temporary: error.temporary })
    }
    return new HoldfastError(name, error.message, { temporary: error.temporary })
  }
}
