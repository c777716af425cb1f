import type { HoldfastClient } from '@holdfast/client'
import { createContext, createElement, useContext, useEffect, type ReactNode } from 'react'

const HoldfastContext = createContext<HoldfastClient | null>(null)

export interface HoldfastProviderProps {
  /** The client, created once by the application (outside rendering), which also closes it. */
  client: HoldfastClient
  /** Call `client.connect()` when the provider mounts. @default true */
  connect?: boolean
  children?: ReactNode
}

/**
 * Makes a client available to the hooks below it. The provider never creates or closes the
 * client: React may mount, unmount and remount a tree (StrictMode does it on purpose), and a
 * connection should not follow those moves. `connect()` is idempotent, so a remount costs nothing.
 */
export function HoldfastProvider({ client, connect = true, children }: HoldfastProviderProps): ReactNode {
  useEffect(() => {
    if (connect) client.connect()
  }, [client, connect])
  return createElement(HoldfastContext.Provider, { value: client }, children)
}

/** The client of the nearest `HoldfastProvider`; throws outside one. */
export function useHoldfastClient(): HoldfastClient {
  const client = useContext(HoldfastContext)
  if (client === null) throw new Error('@holdfast/react: no HoldfastProvider above this component')
  return client
}
