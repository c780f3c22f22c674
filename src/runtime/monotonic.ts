// A clock for deadlines and durations inside one process.

/**
 * Milliseconds on a clock that never jumps with the wall clock (process.hrtime). Unlike
 * performance.now() it loads none of node:perf_hooks, which costs a Claude Code hook about 3 ms
 * of its start-up on Node 20; only differences between two readings mean anything.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
