// relay run holds V8's young generation at its size while it starts (src/runtime/young-generation.ts)
// and lets it grow again once ready. Run in a fresh node (the test runner's own heap has grown
// long since): objects that survive scavenges grow the young generation unless it is held.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/cli.js";

const MODULE = join(REPO_ROOT, "dist", "src", "runtime", "young-generation.js");

/** The young generation's size (MB) before and after keeping ~40 MB of small objects alive, in a fresh node; `hold`: held first, `release`: then released (free to grow to 2 MB a semi-space). */
function youngGeneration(mode: "default" | "hold" | "release"): { before: number; after: number } {
  const script = `
    import { getHeapSpaceStatistics } from "node:v8";
    import { holdYoungGeneration } from ${JSON.stringify(MODULE)};
    const young = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 1048576;
    const release = ${JSON.stringify(mode)} === "default" ? null : holdYoungGeneration();
    if (${JSON.stringify(mode)} === "release") release();
    const before = young();
    const kept = [];
    for (let i = 0; i < 400_000; i++) {
      kept.push({ i, text: "x" + i });
      // the cap is checked after each collection, as the observer's callback runs
      if (i % 20_000 === 0) await new Promise((r) => setImmediate(r));
    }
    console.log(JSON.stringify({ before, after: young(), kept: kept.length }));
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { before: number; after: number };
}

describe("the young generation while relay run starts", () => {
  it("grows under surviving allocations by default (what the hold is for)", () => {
    const { before, after } = youngGeneration("default");
    expect(after).toBeGreaterThan(4 * before); // 1 MB to 32 MB on Node 20
  });

  it("stays at its starting size while held, far below the default's growth", () => {
    const { after } = youngGeneration("hold");
    const unheld = youngGeneration("default").after;
    // V8 commits its second semi-space: 1 MB to 2 MB. On Node 24 under load a run now and then
    // goes further all the same (measured on 2026-11-29: 2 MB in 15 of 16 runs, 3.5 MB in the
    // other; CI rehearsals failed on bounds of 2 MB and of 4x the start, at 5 MB); unheld it
    // reaches 32 MB there. So: a quarter of the unheld growth at most, measured beside it.
    expect(after).toBeLessThanOrEqual(unheld / 4);
  });

  it("grows once released, to 2 MB a semi-space and no further (a step under way may pass it once)", () => {
    const { before, after } = youngGeneration("release");
    expect(after).toBeGreaterThan(2 * before);
    expect(after).toBeLessThanOrEqual(8); // by default: 32
  });
});
