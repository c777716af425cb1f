import type { ConnectionState } from '@holdfast/client'
import { useCallback, useSyncExternalStore } from 'react'
import { useHoldfastClient } from './context.js'

/** The client's connection state (`disconnected | connecting | connected | closed`), re-rendered on every change. */
export function useConnectionState(): ConnectionState {
  const client = useHoldfastClient()
  const subscribe = useCallback((onChange: () => void) => client.on('state', onChange), [client])
  return useSyncExternalStore(subscribe, () => client.state, () => client.state)
}
