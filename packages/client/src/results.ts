import type { ConnectResult, SubscribeResult } from '@holdfast/protocol'

// The protocol package validates frames and the shape of every push, but a reply's `result` only
// as "an object": its fields depend on the command. The client relies on these two, so it checks
// them before trusting them; a malformed one is a protocol error, not a crash in an event handler.

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

export function isConnectResult(v: unknown): v is ConnectResult {
  if (!isObject(v)) return false
  const session = v['session']
  return (
    typeof v['client'] === 'string' &&
    isObject(session) &&
    typeof session['id'] === 'string' &&
    typeof session['token'] === 'string' &&
    isUint(v['ping']) &&
    (v['expiresIn'] === undefined || isUint(v['expiresIn']))
  )
}

export function isSubscribeResult(v: unknown): v is SubscribeResult {
  if (!isObject(v)) return false
  const pubs = v['publications']
  return (
    typeof v['epoch'] === 'string' &&
    isUint(v['offset']) &&
    (pubs === undefined || (Array.isArray(pubs) && pubs.every((p) => isObject(p) && isUint(p['offset']))))
  )
}
