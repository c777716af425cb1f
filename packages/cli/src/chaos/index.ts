// The chaos proxy as a library: start one in a test, point clients at it, toggle faults.
export { ChaosProxy, type ChaosProxyOptions, type ChaosStats, type Endpoint } from './proxy.js'
export { startControlApi, type ControlApi, type ControlApiOptions } from './control-api.js'
export {
  BLACKHOLE_MODES,
  DIRECTIONS,
  DIRECTION_DEFAULTS,
  applyFaultPatch,
  noFaults,
  type BlackholeMode,
  type Direction,
  type DirectionFaults,
  type FaultConfig,
  type FaultPatch,
} from './faults.js'
export { isLoopbackHost } from './loopback.js'
