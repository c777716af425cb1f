import type { ClientStorage } from './storage.js'

const STORE = 'kv'

/** The IndexedDB store behind `indexedDbStorage(name)`, loaded (a chunk of its own) on its first use. */
export function openIndexedDb(name: string): ClientStorage {
  let db: Promise<IDBDatabase> | undefined
  const open = (): Promise<IDBDatabase> =>
    (db ??= new Promise<IDBDatabase>((resolve, reject) => {
      const idb = (globalThis as { indexedDB?: IDBFactory }).indexedDB
      if (idb === undefined) throw new Error('indexedDbStorage: this runtime has no indexedDB')
      const req = idb.open(name, 1)
      req.onupgradeneeded = () => req.result.createObjectStore(STORE)
      req.onsuccess = () => {
        const conn = req.result
        // Another tab upgrading the schema, or the user clearing site data: reopen on next use.
        conn.onversionchange = () => {
          conn.close()
          db = undefined
        }
        conn.onclose = () => (db = undefined)
        resolve(conn)
      }
      req.onerror = () => {
        db = undefined
        reject(req.error ?? new Error(`indexedDbStorage: cannot open ${name}`))
      }
    }))
  const run = <T>(mode: IDBTransactionMode, op: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> =>
    open().then(
      (conn) =>
        new Promise<T>((resolve, reject) => {
          const tx = conn.transaction(STORE, mode)
          const req = op(tx.objectStore(STORE))
          tx.oncomplete = () => resolve(req.result)
          tx.onerror = tx.onabort = () => reject(tx.error ?? req.error ?? new Error('indexedDbStorage: transaction aborted'))
        }),
    )
  return {
    get: (key) => run('readonly', (s) => s.get(key)).then((v: unknown) => (typeof v === 'string' ? v : undefined)),
    set: (key, value) => run('readwrite', (s) => s.put(value, key)).then(() => undefined),
    delete: (key) => run('readwrite', (s) => s.delete(key)).then(() => undefined),
    keys: (prefix) => run('readonly', (s) => s.getAllKeys(IDBKeyRange.bound(prefix, `${prefix}\uffff`))).then((keys) => keys.map(String)),
  }
}
