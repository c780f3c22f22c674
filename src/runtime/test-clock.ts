// The wall clock, which the end-to-end tests can move forward to simulate a conversation's pace
// without waiting: RELAY_CLOCK_SKEW_FILE=<path> adds the whole number of milliseconds in that
// file to Date.now() (read at each look, so a test moves it while the relay runs). Unset in
// normal use: Date.now itself. Like RELAY_CRASH_AT, a test seam and nothing else.
import { readFileSync } from "node:fs";

export function wallClock(file = process.env.RELAY_CLOCK_SKEW_FILE): () => number {
  if (!file) return Date.now;
  return () => {
    let skew = 0;
    try {
      skew = Number.parseInt(readFileSync(file, "utf8").trim(), 10) || 0;
    } catch {
      // no file yet: no skew
    }
    return Date.now() + skew;
  };
}
