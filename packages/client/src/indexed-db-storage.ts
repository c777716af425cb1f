import type { ClientStorage } from './storage.js'

/**
 * A `ClientStorage` in the browser's IndexedDB: one database named `name` with one object store.
 * Tabs of one origin that use the same name share it (the client makes sure only one of them sends
 * each stored command). Writes resolve when their transaction commits, so a command is on disk
 * before it is sent. The IndexedDB code is loaded on the first call, so a page that imports
 * `indexedDbStorage` but never uses it does not carry it.
 */
export function indexedDbStorage(name = 'holdfast'): ClientStorage {
  let store: Promise<ClientStorage> | undefined
  const use = (): Promise<ClientStorage> =>
    (store ??= import('./indexed-db.js').then(
      (m) => m.openIndexedDb(name),
      (err: unknown) => {
        // A failed load (a network error fetching the chunk) is tried again on the next call.
        store = undefined
        throw err
      },
    ))
  return {
    get: (key) => use().then((s) => s.get(key)),
    set: (key, value) => use().then((s) => s.set(key, value)),
    delete: (key) => use().then((s) => s.delete(key)),
    keys: (prefix) => use().then((s) => s.keys(prefix)),
  }
}
