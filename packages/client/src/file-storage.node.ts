import { createHash, randomBytes } from 'node:crypto'
import { unlinkSync } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import process from 'node:process'
import type { ClientStorage } from './storage.js'

/** Node's system errors carry `code` (ENOENT, EEXIST...). */
type ErrnoException = Error & { code?: string }

const LOCK = '.lock'
/** File names stay well under the 255 bytes most file systems allow; longer keys are hashed. */
const MAX_NAME = 200
const HASHED = '~'

/** A key's file: the key itself (URI-encoded) when short enough, else `~` + its SHA-256. */
function fileName(key: string): string {
  const name = encodeURIComponent(key)
  return name.length <= MAX_NAME && !name.startsWith(HASHED) && !name.startsWith('.') ? name : HASHED + createHash('sha256').update(key).digest('hex')
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as ErrnoException).code === 'EPERM'
  }
}

/**
 * Take the directory for this process: a `.lock` file with our pid. A lock whose process is gone
 * (crash, kill -9) is taken over; one held by a live process is refused, because clients of two
 * processes cannot coordinate who sends a stored command.
 */
async function lockDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  const path = join(dir, LOCK)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx')
      await fh.writeFile(String(process.pid))
      await fh.close()
      // Synchronous: 'exit' listeners cannot wait. A process killed outright leaves the file, and
      // the next one sees its pid is gone.
      process.once('exit', () => {
        try {
          unlinkSync(path)
        } catch {
          // Already gone.
        }
      })
      return
    } catch (err) {
      if ((err as ErrnoException).code !== 'EEXIST') throw err
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10)
    if (owner === process.pid) return
    if (Number.isSafeInteger(owner) && owner > 0 && alive(owner)) {
      throw new Error(`fileStorage: ${dir} is in use by process ${owner}; give each process a directory of its own`)
    }
    await unlink(path).catch(() => {})
  }
  throw new Error(`fileStorage: cannot lock ${dir}`)
}

/**
 * A `ClientStorage` in a directory, one file per key, for Node. Writes go to a temporary file that
 * is renamed over the old one, so a crash mid-write leaves the old value or the new one, never half
 * of either. The directory belongs to one process at a time (a `.lock` file with its pid).
 */
export function fileStorage(dir: string): ClientStorage {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('fileStorage: dir must be a non-empty string')
  let locked: Promise<void> | undefined
  const ready = (): Promise<void> => (locked ??= lockDir(dir).catch((err: unknown) => {
    locked = undefined
    throw err
  }))
  const read = async (name: string): Promise<[string, string] | undefined> => {
    let text: string
    try {
      text = await readFile(join(dir, name), 'utf8')
    } catch (err) {
      if ((err as ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    const pair: unknown = JSON.parse(text)
    return Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string' ? [pair[0], pair[1]] : undefined
  }
  return {
    async get(key) {
      await ready()
      const pair = await read(fileName(key))
      return pair !== undefined && pair[0] === key ? pair[1] : undefined
    },
    async set(key, value) {
      await ready()
      const file = join(dir, fileName(key))
      const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
      await writeFile(tmp, JSON.stringify([key, value]))
      await rename(tmp, file)
    },
    async delete(key) {
      await ready()
      await unlink(join(dir, fileName(key))).catch((err: ErrnoException) => {
        if (err.code !== 'ENOENT') throw err
      })
    },
    async keys(prefix) {
      await ready()
      const out: string[] = []
      for (const name of await readdir(dir)) {
        if (name.startsWith('.') || name.endsWith('.tmp')) continue
        const key = name.startsWith(HASHED) ? (await read(name))?.[0] : decodeURIComponent(name)
        if (key !== undefined && key.startsWith(prefix)) out.push(key)
      }
      return out
    },
  }
}
