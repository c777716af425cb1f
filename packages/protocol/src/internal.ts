// Shared between holdfast packages; not a public API: it may change without notice.
export { optionChecks, type OptionChecks } from './option-checks.js'
