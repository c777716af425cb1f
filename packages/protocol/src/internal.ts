// Shared between holdfast packages; not a public API: it may change without notice.
export { optionChecks, type OptionChecks } from './option-checks.js'
// The lean set the browser client builds on: code tables without descriptions, the JSON codec,
// the error class and the message guards, and nothing that reaches the MessagePack library (a
// bundler cannot leave out what the package index re-exports once anything imports the index).
export { adviceFor, closeCodeName, closeCodes, errorCodeName, errorCodes } from './code-core.js'
export { batches, jsonClientCodec, type ClientCodec } from './codec.js'
export { HoldfastError } from './errors.js'
export { bytesReplacer, hasBytes, reviveBytes } from './json-bytes.js'
export { isErrorReply, isReply, PROTOCOL_VERSION, Subprotocols } from './messages.js'
export { continuesFrom } from './stream-position.js'
