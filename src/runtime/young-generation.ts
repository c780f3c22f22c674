// V8's young generation while `relay run` starts. By default it doubles its semi-spaces whenever
// enough objects survive a scavenge, and loading the relay's modules (zod's schemas, xstate, the
// machines) and reading a 100,000-line ledger grow it from 1 MB to 8 MB a semi-space (16 MB, every
// page of it touched, so resident for good, as V8 does not give it back). Neither needs the room:
// with the growth held at 1x, start-up and the ledger's read took the same CPU (imports 486-550 ms
// against 521-566, the read 705-742 ms against 737-788, four runs each on Node 20), and the idle
// daemon kept 12 MB less. Building a request over a full history does need it (at 1 MB a
// semi-space its CPU doubled), so the growth is given back once the relay is ready and its ledger
// read: from then on the young generation grows exactly as it always did, when calls need it.
//
// `semi_space_growth_factor` is read by V8 each time it grows the young generation, so setting it
// at run time takes effect; a Node whose V8 ignored or refused it would only keep the default.
import { setFlagsFromString } from "node:v8";

/** V8's own default for --semi-space-growth-factor. */
const DEFAULT_GROWTH = 2;

function growth(factor: number): void {
  try {
    setFlagsFromString(`--semi-space-growth-factor=${factor}`);
  } catch {
    // a V8 with frozen flags: the default stays, which is only less frugal
  }
}

/** Keep the young generation at its current size until the returned release is called (once is enough; more are harmless). */
export function holdYoungGeneration(): () => void {
  growth(1);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    growth(DEFAULT_GROWTH);
  };
}
