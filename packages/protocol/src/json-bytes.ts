// Bytes in JSON. MessagePack carries byte arrays natively; JSON has none, so a Uint8Array (a
// Node Buffer too) is written as the object `{"$bytes": "<base64>"}` and read back as a
// Uint8Array by both sides' JSON decoder. That way bytes published by a MessagePack client reach
// JSON subscribers, live and in history, as something they can decode, and a JSON client can send
// bytes too. Without it JSON.stringify would write a Buffer as {"type":"Buffer","data":[…]} and a
// Uint8Array as {"0":…,"1":…}. Kept small: it is part of the browser client's first chunk.

/** Whether a value holds a Uint8Array anywhere. Iterative: messages may nest deeply. */
export function hasBytes(value: unknown): boolean {
  for (const stack = [value]; stack.length; ) {
    const v = stack.pop()
    if (v instanceof Uint8Array) return true
    if (typeof v === 'object' && v) for (const child of Object.values(v)) stack.push(child)
  }
  return false
}

/**
 * JSON.stringify's replacer: `this[key]` is the value before its toJSON ran, so a Buffer is seen
 * as bytes rather than as its {"type":"Buffer"} form. Standard base64, with padding.
 */
export function bytesReplacer(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key]
  if (!(raw instanceof Uint8Array)) return value
  let binary = ''
  for (const b of raw) binary += String.fromCharCode(b)
  return { $bytes: btoa(binary) }
}

/**
 * JSON.parse's reviver: `{"$bytes": "<base64>"}` (that one key, a base64 string) becomes its
 * Uint8Array; anything else, base64 that is not, stays as it is. Called bottom-up: every depth.
 */
export function reviveBytes(_key: string, v: unknown): unknown {
  const text = (v as { $bytes?: unknown } | null)?.$bytes
  if (typeof text !== 'string' || Object.keys(v as object).length !== 1) return v
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0))
  } catch {
    return v
  }
}
