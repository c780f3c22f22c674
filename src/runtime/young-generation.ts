// V8's young generation under `relay run`. By default V8 doubles its semi-spaces whenever enough
// objects survive a scavenge, up to 16 MB each: loading the relay's modules (zod's schemas,
// xstate, the machines) grew them from 1 MB to 8 MB, and building requests over a full history to
// 16 MB (32 MB, every page touched, so resident for good: V8 does not give it back). Measured on
// Node 20 (the README's "relay run's start"):
// - start-up does not need the room: held at 1 MB, loading the modules and reading a
//   100,000-line ledger took the same CPU, and the idle daemon kept 12 MB less;
// - requests need some: 60 requests over a 400k-character history took twice the CPU at 1 MB a
//   semi-space, but less than by default at 2 MB (97-115 ms against 146-153), with 8 MB less peak.
// So the growth is held while the relay starts, then allowed up to 2 MB a semi-space (checked
// after collections, so a burst of allocation can take it one doubling further, to 4 MB).
//
// `semi_space_growth_factor` is read by V8 each time it grows the young generation, so setting it
// at run time takes effect; a Node whose V8 ignored or refused it would only keep the default.
import { PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/** V8's own default for --semi-space-growth-factor. */
const DEFAULT_GROWTH = 2;

/** The semi-space size the young generation may grow to once the relay has started (MB). */
export const RUNNING_SEMI_SPACE_MB = 2;

function growth(factor: number): void {
  try {
    setFlagsFromString(`--semi-space-growth-factor=${factor}`);
  } catch {
    // a V8 with frozen flags: the default stays, which is only less frugal
  }
}

/** The young generation's size (both semi-spaces), MB. */
export function youngGenerationMb(): number {
  return (getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0) / 1048576;
}

/**
 * Keep the young generation at its current size until the returned release is called; from then
 * on it may grow to `semiSpaceMb` a semi-space (checked after each garbage collection; a growth
 * step already under way may pass it once). Releasing twice is harmless.
 */
export function holdYoungGeneration(semiSpaceMb = RUNNING_SEMI_SPACE_MB): () => void {
  growth(1);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    if (youngGenerationMb() >= 2 * semiSpaceMb) return; // already there: stay held
    growth(DEFAULT_GROWTH);
    const gcs = new PerformanceObserver(() => {
      if (youngGenerationMb() < 2 * semiSpaceMb) return;
      growth(1);
      gcs.disconnect();
    });
    gcs.observe({ entryTypes: ["gc"] });
  };
}
