// `holdfast bench` as a library: for bench/run-all.ts and the tests.
export { resolveBenchConfig, parseSourceIps, BENCH_FLAGS, MAX_CONNECTIONS_PER_WORKER, type BenchFlag } from './options.js'
export { runBench, type RunIO } from './runner.js'
export { runCompare, ratios } from './compare.js'
export { formatCompare, formatReport } from './report-text.js'
export { renderCompareHtml, renderReportHtml } from './html-report.js'
export { checkConnection, newSeqState, PreparedLog, recordDelivery, MAX_HOLES, type SeqState, type SeqVerdict } from './sequence.js'
export { readProcSample, type ProcSample } from './proc-stats.js'
export * from './types.js'
