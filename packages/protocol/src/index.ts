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
export { codecFor, jsonCodec, msgpackCodec, type Codec, type DecodeLimits, type FrameData } from './codec.js'
export { validateClientMessage, validateServerMessage } from './validate.js'
export * from './messages.js'
export { continuesFrom } from './stream-position.js'
