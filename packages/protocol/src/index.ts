export {
  CloseCodes,
  ErrorCodes,
  adviceFor,
  closeCodeName,
  errorCodeName,
  type CloseCodeInfo,
  type CloseCodeName,
  type ErrorCodeInfo,
  type ErrorCodeName,
  type ReconnectAdvice,
} from './codes.js'
export { HoldfastError } from './errors.js'
export { type Codec, type DecodeLimits, type FrameData } from './codec.js'
export { jsonCodec } from './json-codec.js'
export { msgpackCodec } from './msgpack-codec.js'
export { codecFor } from './codec-for.js'
export { validateClientMessage, type DecodedClientMessage, type InvalidCommand } from './validate-client.js'
export { validateServerMessage } from './validate.js'
export * from './messages.js'
export { continuesFrom } from './stream-position.js'
