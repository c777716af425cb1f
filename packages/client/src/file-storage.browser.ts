import type { ClientStorage } from './storage.js'

/** `fileStorage` exists in Node only; browser bundles get this stand-in, so they never pull in node:fs. */
export function fileStorage(_dir: string): ClientStorage {
  throw new TypeError('fileStorage needs Node (node:fs); in a browser use indexedDbStorage(name)')
}
