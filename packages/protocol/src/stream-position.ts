import type { StreamPosition } from './messages.js'

/**
 * Whether a stream in `epoch` continues from `position`: the same epoch, or a position at offset
 * 0. Offset 0 means nothing was delivered yet, so it belongs to no epoch in particular: the
 * publication at offset 1 of any epoch is the next one. Server and client judge live feeds and
 * recoveries by this one rule.
 */
export function continuesFrom(position: StreamPosition, epoch: string): boolean {
  return position.offset === 0 || position.epoch === epoch
}
