import type { CloseCodeName, HoldfastError } from '@holdfast/protocol'

/** A connect the backend refused or could not decide: close the connection with `close`. */
export class ConnectRefused extends Error {
  constructor(
    readonly close: CloseCodeName | number,
    reason: string,
  ) {
    super(reason)
  }
}

/** The close code of a connect (or a node-side refresh) the backend answered with an error. */
export function connectCloseFor(err: HoldfastError): 'try_later' | 'token_expired' | 'forbidden' | 'unauthorized' {
  if (err.temporary) return 'try_later'
  if (err.code === 'token_expired') return 'token_expired'
  if (err.code === 'permission_denied') return 'forbidden'
  return 'unauthorized'
}
